"""`resolver serve`, `migrate` and `siteinfo`: run the node, apply the schema, print the site record."""

from __future__ import annotations

import argparse
import asyncio
import sys

from resolver.config import Config
from resolver.embedded import database


def serve(args: argparse.Namespace, config: Config) -> int:
    from resolver.server import serve as run_node

    if config.workers < 1:
        print("resolver: --workers must be at least 1", file=sys.stderr)
        return 2
    if config.recursive and not config.upstream_url:
        print("resolver: --recursive needs --upstream-url (the top-level node)", file=sys.stderr)
        return 2
    if min(config.recursive_max_bytes, config.recursive_max_depth) < 1:
        print(
            "resolver: --recursive-max-bytes and --recursive-max-depth must be at least 1",
            file=sys.stderr,
        )
        return 2
    if config.native_port and config.native_port == config.port:
        print("resolver: --native-port must differ from --port (the HTTP port)", file=sys.stderr)
        return 2
    problem = _tls_problem(config)
    if problem:
        print(f"resolver: {problem}", file=sys.stderr)
        return 2
    try:
        return run_node(config)
    except Exception as exc:  # a clear line instead of a traceback for configuration errors
        from resolver.ports import EXIT_PORT_IN_USE, PortInUse
        from resolver.services.bootstrap import BootstrapError
        from resolver.store.migrations import SchemaTooNew

        if isinstance(exc, PortInUse):
            print(f"resolver: {exc}", file=sys.stderr)
            return EXIT_PORT_IN_USE
        if isinstance(exc, BootstrapError | SchemaTooNew):
            print(f"resolver: {exc}", file=sys.stderr)
            return 2
        raise


def _tls_problem(config: Config) -> str | None:
    """What keeps the TLS settings from serving, before any worker starts (None: nothing)."""
    from resolver.http.tls import TLSFilesError, server_tls

    if bool(config.tls_cert) != bool(config.tls_key):
        return "--tls-cert and --tls-key go together (a PEM certificate chain and its private key)"
    if config.http_redirect_port:
        if not config.tls_cert:
            return "--http-redirect-port redirects to HTTPS: give --tls-cert and --tls-key"
        if config.http_redirect_port in (config.port, config.native_port):
            return "--http-redirect-port must differ from --port and --native-port"
    try:
        server_tls(config)
    except TLSFilesError as exc:
        return f"TLS: {exc}"
    return None


def siteinfo(args: argparse.Namespace, config: Config) -> int:
    import orjson

    from resolver.upstream.site import site_record

    print(orjson.dumps(site_record(config), option=orjson.OPT_INDENT_2).decode())
    return 0


def migrate(args: argparse.Namespace, config: Config) -> int:
    from resolver.server import run_migrations

    with database(config) as config:
        version = asyncio.run(run_migrations(config))
    print(f"resolver: schema at version {version}")
    return 0


def tls_arguments(tls: argparse.ArgumentParser) -> None:
    tls.add_argument("action", choices=["self-signed"])
    tls.add_argument("--out", default=".", help="directory for cert.pem and key.pem (default: here)")
    tls.add_argument(
        "--name",
        action="append",
        dest="names",
        help="a host name or IP address the certificate is for (repeat; default: localhost and 127.0.0.1)",
    )
    tls.add_argument("--days", type=int, default=365, help="days the certificate is valid (default 365)")


def tls(args: argparse.Namespace, config: Config) -> int:
    """`resolver tls self-signed`: a certificate and key for a first run of HTTPS."""
    from pathlib import Path

    from resolver.http.tls import write_self_signed

    if not 1 <= args.days <= 3650:
        print("resolver: --days must be between 1 and 3650", file=sys.stderr)
        return 2
    names = args.names or ["localhost", "127.0.0.1"]
    cert, key = write_self_signed(Path(args.out), names, args.days)
    print(f"wrote {cert} and {key} (mode 0600) for {', '.join(names)}, valid {args.days} days")
    print(f"serve with: resolver serve --tls-cert {cert} --tls-key {key}")
    print("clients must be told to trust this certificate; for clients of the public, use one from a CA")
    return 0
