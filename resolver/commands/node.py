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
