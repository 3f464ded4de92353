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
    problem = _tls_problem(config) or _keys_problem(config)
    if problem:
        print(f"resolver: {problem}", file=sys.stderr)
        return 2
    try:
        return run_node(config)
    except Exception as exc:  # a clear line instead of a traceback for configuration errors
        from resolver.ports import EXIT_PORT_IN_USE, PortInUse
        from resolver.services.bootstrap import BootstrapError
        from resolver.services.seckeys import SealError
        from resolver.store.migrations import SchemaTooNew

        if isinstance(exc, PortInUse):
            print(f"resolver: {exc}", file=sys.stderr)
            return EXIT_PORT_IN_USE
        if isinstance(exc, BootstrapError | SealError | SchemaTooNew):
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


def _keys_problem(config: Config) -> str | None:
    """A key directory that holds keys the node cannot load (a passphrase missing or wrong, a file
    unreadable) stops the start: the node would otherwise answer certify requests unsigned."""
    from resolver.keys import KeyDirectory, KeyDirectoryError

    try:
        KeyDirectory(config.keys_path).load_published()
    except KeyDirectoryError as exc:
        return f"node keys: {exc}"
    return None


def siteinfo(args: argparse.Namespace, config: Config) -> int:
    import orjson

    from resolver.keys import public_octets
    from resolver.upstream.site import site_record

    current, _ = public_octets(config.keys_path)
    print(orjson.dumps(site_record(config, current), option=orjson.OPT_INDENT_2).decode())
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


def keys_arguments(keys: argparse.ArgumentParser) -> None:
    keys.add_argument("action", choices=["init", "show", "rotate"])
    keys.add_argument(
        "--algorithm",
        default="rsa",
        choices=["rsa", "sm2"],
        help="key type (default rsa: RSA-2048; sm2: SM2 with SM3, which signs records when the node "
        "runs with --record-key sm2; an RSA key and an SM2 key live side by side and rotate apart)",
    )
    keys.add_argument(
        "--overlap",
        type=float,
        default=None,
        help="rotate: seconds the new key is published before it signs, and the old one after (default 86400)",
    )
    keys.add_argument("--json", action="store_true", help="show: print JSON")


def keys(args: argparse.Namespace, config: Config) -> int:
    """`resolver keys init|show|rotate`: the node's key pairs (resolver/keys.py)."""
    import orjson

    from resolver.keys import DEFAULT_OVERLAP, KeyDirectory, KeyDirectoryError
    from resolver.services.seckeys import SEAL_FILE, SealError, read_or_make_seal

    directory = KeyDirectory(config.keys_path)
    try:
        existing = directory.keys()
        same = [k for k in existing if k.algorithm == args.algorithm]
        if args.action == "init":
            if same:
                print(
                    f"resolver: {directory.path} already holds the node's {args.algorithm} key; "
                    f"use 'resolver keys rotate --algorithm {args.algorithm}'",
                    file=sys.stderr,
                )
                return 2
            key = directory.add(args.algorithm, 0)
            seal = read_or_make_seal(directory.path)
            print(f"made key {key.id} ({key.algorithm}), signing now; fingerprint {key.fingerprint}")
            print(f"the seal of stored secret keys is {seal.key_id} ({directory.path / SEAL_FILE})")
            print(f"kept in {directory.path} (private key mode 0600); back it up apart from the database")
            print("every instance of the node needs this same directory")
            return 0
        if args.action == "rotate":
            if not same:
                print(
                    f"resolver: no {args.algorithm} key to rotate; use 'resolver keys init --algorithm {args.algorithm}'",
                    file=sys.stderr,
                )
                return 2
            waiting = [
                k for k, state in directory.states() if state == "next" and k.algorithm == args.algorithm
            ]
            if waiting:
                print(
                    f"resolver: key {waiting[0].id} is already waiting to sign from "
                    f"{waiting[0].signs_from.isoformat()}; rotate again after that",
                    file=sys.stderr,
                )
                return 2
            overlap = DEFAULT_OVERLAP if args.overlap is None else args.overlap
            if not 0 <= overlap <= 30 * 86400:
                print("resolver: --overlap must be between 0 and 2592000 seconds", file=sys.stderr)
                return 2
            key = directory.add(args.algorithm, overlap)
            print(
                f"made key {key.id} ({key.algorithm}); published now, signing from {key.signs_from.isoformat()}"
            )
            print("the current key goes on signing until then, and stays published as long again")
            return 0
        states = directory.states()
        if args.json:
            print(
                orjson.dumps([k.to_json(state) for k, state in states], option=orjson.OPT_INDENT_2).decode()
            )
            return 0
        if not states:
            print(f"no key in {directory.path}; 'resolver keys init' makes one")
            return 0
        for key, state in states:
            print(
                f"{key.id:<22} {key.algorithm:<4} {state:<9} signs from {key.signs_from.isoformat()}  {key.fingerprint}"
            )
        return 0
    except (KeyDirectoryError, SealError) as exc:
        print(f"resolver: {exc}", file=sys.stderr)
        return 2
