"""The `resolver` command: `serve` and `migrate`. Every option can also come from the environment."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from resolver.config import CacheSettings, Config, Limits, default_data_dir


@dataclass(frozen=True)
class Option:
    flag: str
    env: str
    target: str  # "field", "limits.field" or "cache.field"
    kind: Callable[[str], Any]
    help: str
    default: Any = None


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


_CONFIG, _LIMITS, _CACHE = Config(workers=1), Limits(), CacheSettings()

DATABASE_OPTIONS = [
    Option(
        "--dsn",
        "RESOLVER_DSN",
        "dsn",
        str,
        "Postgres URL; without it an embedded Postgres is started",
    ),
    Option(
        "--data-dir",
        "RESOLVER_DATA_DIR",
        "data_dir",
        Path,
        "where the embedded Postgres keeps its data",
        default_data_dir(),
    ),
]
SERVE_OPTIONS = [
    Option("--host", "RESOLVER_HOST", "host", str, "address to listen on", _CONFIG.host),
    Option("--port", "RESOLVER_PORT", "port", int, "port to listen on", _CONFIG.port),
    Option("--workers", "RESOLVER_WORKERS", "workers", int, "worker processes", os.cpu_count() or 1),
    *DATABASE_OPTIONS,
    Option(
        "--node-prefix",
        "RESOLVER_NODE_PREFIX",
        "node_prefix",
        str,
        "the prefix this node serves",
        _CONFIG.node_prefix,
    ),
    Option(
        "--admin-secret",
        "RESOLVER_ADMIN_SECRET",
        "admin_secret",
        str,
        "secret of the node administrator 300:0.NA/<node prefix> (needed on first start)",
    ),
    Option(
        "--pool-max",
        "RESOLVER_POOL_MAX",
        "pool_max",
        int,
        "write connections per worker",
        _CONFIG.pool_max,
    ),
    Option(
        "--reader-connections",
        "RESOLVER_READER_CONNECTIONS",
        "reader_connections",
        int,
        "lookup connections per worker",
        _CONFIG.reader_connections,
    ),
    Option(
        "--db-timeout",
        "RESOLVER_DB_TIMEOUT",
        "db_timeout",
        float,
        "seconds a database call may take before answering 503",
        _CONFIG.db_timeout,
    ),
    Option(
        "--shutdown-timeout",
        "RESOLVER_SHUTDOWN_TIMEOUT",
        "shutdown_timeout",
        float,
        "seconds in-flight requests get to finish on SIGTERM",
        _CONFIG.shutdown_timeout,
    ),
    Option(
        "--access-log",
        "RESOLVER_ACCESS_LOG",
        "access_log",
        _bool,
        "log every request (slow)",
        False,
    ),
    Option(
        "--cache-max-entries",
        "RESOLVER_CACHE_MAX_ENTRIES",
        "cache.max_entries",
        int,
        "cached handles per worker",
        _CACHE.max_entries,
    ),
    Option(
        "--cache-max-bytes",
        "RESOLVER_CACHE_MAX_BYTES",
        "cache.max_bytes",
        int,
        "cache size per worker in bytes",
        _CACHE.max_bytes,
    ),
    Option(
        "--cache-max-ttl",
        "RESOLVER_CACHE_MAX_TTL",
        "cache.max_ttl",
        float,
        "longest time in seconds a handle stays cached",
        _CACHE.max_ttl,
    ),
    Option(
        "--cache-negative-entries",
        "RESOLVER_CACHE_NEGATIVE_ENTRIES",
        "cache.negative_entries",
        int,
        "remembered unknown handles per worker",
        _CACHE.negative_entries,
    ),
    Option(
        "--cache-negative-ttl",
        "RESOLVER_CACHE_NEGATIVE_TTL",
        "cache.negative_ttl",
        float,
        "seconds an unknown handle is remembered",
        _CACHE.negative_ttl,
    ),
    Option(
        "--max-handle-length",
        "RESOLVER_MAX_HANDLE_LENGTH",
        "limits.max_handle_length",
        int,
        "longest handle in characters",
        _LIMITS.max_handle_length,
    ),
    Option(
        "--max-prefix-length",
        "RESOLVER_MAX_PREFIX_LENGTH",
        "limits.max_prefix_length",
        int,
        "longest prefix in characters",
        _LIMITS.max_prefix_length,
    ),
    Option(
        "--max-values-per-handle",
        "RESOLVER_MAX_VALUES_PER_HANDLE",
        "limits.max_values_per_handle",
        int,
        "most values in one handle",
        _LIMITS.max_values_per_handle,
    ),
    Option(
        "--max-value-bytes",
        "RESOLVER_MAX_VALUE_BYTES",
        "limits.max_value_bytes",
        int,
        "largest value data in bytes (as JSON)",
        _LIMITS.max_value_bytes,
    ),
    Option(
        "--max-type-length",
        "RESOLVER_MAX_TYPE_LENGTH",
        "limits.max_type_length",
        int,
        "longest value type",
        _LIMITS.max_type_length,
    ),
    Option(
        "--max-body-bytes",
        "RESOLVER_MAX_BODY_BYTES",
        "limits.max_body_bytes",
        int,
        "largest request body in bytes",
        _LIMITS.max_body_bytes,
    ),
    Option(
        "--max-page-size",
        "RESOLVER_MAX_PAGE_SIZE",
        "limits.max_page_size",
        int,
        "most handles in one listing page",
        _LIMITS.max_page_size,
    ),
]


def _add(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    for option in options:
        env_value = os.environ.get(option.env)
        default = option.kind(env_value) if env_value not in (None, "") else option.default
        shown = "(secret)" if "secret" in option.flag else default
        parser.add_argument(
            option.flag,
            type=option.kind,
            default=default,
            dest=option.target.replace(".", "__"),
            metavar=option.flag.lstrip("-").upper().replace("-", "_"),
            help=f"{option.help} [env {option.env}; default {shown}]",
        )


def build_config(args: argparse.Namespace, options: Sequence[Option]) -> Config:
    """A Config from parsed arguments (which already hold the environment's values)."""
    top: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    cache: dict[str, Any] = {}
    for option in options:
        value = getattr(args, option.target.replace(".", "__"))
        if value is None:
            continue
        group, _, name = option.target.rpartition(".")
        {"": top, "limits": limits, "cache": cache}[group][name] = value
    config = Config(**top)
    return replace(config, limits=replace(config.limits, **limits), cache=replace(config.cache, **cache))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="resolver",
        description="A secondary identifier node: Handle-compatible registration and resolution.",
    )
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the node", description="Run the node until SIGTERM/SIGINT."
    )
    _add(serve, SERVE_OPTIONS)
    migrate = commands.add_parser(
        "migrate",
        help="apply the schema and exit",
        description="Apply the database schema and exit.",
    )
    _add(migrate, DATABASE_OPTIONS)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from resolver.server import serve, setup_logging

    setup_logging()
    if args.command == "serve":
        config = build_config(args, SERVE_OPTIONS)
        if config.workers < 1:
            print("resolver: --workers must be at least 1", file=sys.stderr)
            return 2
        try:
            return serve(config)
        except Exception as exc:  # a clear line instead of a traceback for configuration errors
            from resolver.bootstrap import BootstrapError
            from resolver.store.migrations import SchemaTooNew

            if isinstance(exc, BootstrapError | SchemaTooNew):
                print(f"resolver: {exc}", file=sys.stderr)
                return 2
            raise
    config = build_config(args, DATABASE_OPTIONS)
    return _migrate(config)


def _migrate(config: Config) -> int:
    from resolver.embedded import EmbeddedPostgres
    from resolver.server import run_migrations

    embedded = None
    if config.dsn is None:
        embedded = EmbeddedPostgres(config.data_dir)
        config = replace(config, dsn=embedded.start())
    try:
        version = asyncio.run(run_migrations(config))
        print(f"resolver: schema at version {version}")
        return 0
    finally:
        if embedded is not None:
            embedded.stop()
