"""The `resolver` command. Every option can also come from the environment.

Commands: `serve` (run the node), `migrate` (apply the schema), `import` and `export` (identifiers
in bulk), `stats` (the node against the policy thresholds), `siteinfo` (this node's site record),
`upstream` (the outbox for the top-level node: status, resync).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from resolver.config import CacheSettings, Config, Limits, RateLimits, default_data_dir


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


_CONFIG, _LIMITS, _CACHE, _RATE = Config(workers=1), Limits(), CacheSettings(), RateLimits()


def _header_value(text: str) -> str:
    if not text.strip() or not all(" " <= c <= "~" for c in text):
        raise argparse.ArgumentTypeError(f"expected printable ASCII text, got {text!r}")
    return text


def _types(text: str) -> tuple[str, ...]:
    return tuple(t.strip().lower() for t in text.split(",") if t.strip())


def _networks(text: str) -> tuple[str, ...]:
    """Comma-separated networks (CIDR, or single addresses), each checked and written canonically."""
    import ipaddress

    try:
        return tuple(str(ipaddress.ip_network(n.strip(), strict=False)) for n in text.split(",") if n.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
NODE_PREFIX_OPTION = Option(
    "--node-prefix",
    "RESOLVER_NODE_PREFIX",
    "node_prefix",
    str,
    "the prefix this node serves",
    _CONFIG.node_prefix,
)
UPSTREAM_OPTIONS = [
    Option(
        "--upstream-url",
        "RESOLVER_UPSTREAM_URL",
        "upstream_url",
        str,
        "the top-level node (or its simulator) that receives prefix records and statistics",
    ),
    Option(
        "--upstream-user", "RESOLVER_UPSTREAM_USER", "upstream_user", str, "account at the top-level node"
    ),
    Option("--upstream-secret", "RESOLVER_UPSTREAM_SECRET", "upstream_secret", str, "its secret"),
    Option(
        "--public-url",
        "RESOLVER_PUBLIC_URL",
        "public_url",
        str,
        "this node's address as others reach it (HS_SITE, scan pages, QR codes); default http://HOST:PORT",
    ),
]
SERVE_OPTIONS = [
    *UPSTREAM_OPTIONS,
    Option(
        "--recursive",
        "RESOLVER_RECURSIVE",
        "recursive",
        _bool,
        "resolve other nodes' handles through the top-level node",
        False,
    ),
    Option(
        "--recursive-timeout",
        "RESOLVER_RECURSIVE_TIMEOUT",
        "recursive_timeout",
        float,
        "seconds each hop of a recursive resolution may take",
        _CONFIG.recursive_timeout,
    ),
    Option(
        "--recursive-concurrency",
        "RESOLVER_RECURSIVE_CONCURRENCY",
        "recursive_concurrency",
        int,
        "most upstream requests of recursive resolution at once, per worker",
        _CONFIG.recursive_concurrency,
    ),
    Option(
        "--recursive-allow",
        "RESOLVER_RECURSIVE_ALLOW",
        "recursive_allow",
        _networks,
        "networks (comma-separated CIDRs) recursion may contact although they are loopback, private "
        "or link-local, which it refuses otherwise",
        ",".join(_CONFIG.recursive_allow),
    ),
    Option(
        "--recursive-max-bytes",
        "RESOLVER_RECURSIVE_MAX_BYTES",
        "recursive_max_bytes",
        int,
        "largest answer recursion reads from another node, in bytes (a larger one fails the hop)",
        _CONFIG.recursive_max_bytes,
    ),
    Option(
        "--recursive-cache-bytes",
        "RESOLVER_RECURSIVE_CACHE_BYTES",
        "recursive_cache_bytes",
        int,
        "bytes per worker of what recursion caches (prefix sites and unreachable addresses get a "
        "sixteenth of it each, answers the rest)",
        _CONFIG.recursive_cache_bytes,
    ),
    Option(
        "--recursive-ttl-floor",
        "RESOLVER_RECURSIVE_TTL_FLOOR",
        "recursive_ttl_floor",
        float,
        "shortest time in seconds recursion keeps a prefix site or an answer, whatever its TTL",
        _CONFIG.recursive_ttl_floor,
    ),
    Option(
        "--recursive-negative-ttl",
        "RESOLVER_RECURSIVE_NEGATIVE_TTL",
        "recursive_negative_ttl",
        float,
        "seconds recursion remembers an unknown prefix, an unknown handle or a failed hop",
        _CONFIG.recursive_negative_ttl,
    ),
    Option(
        "--recursive-max-depth",
        "RESOLVER_RECURSIVE_MAX_DEPTH",
        "recursive_max_depth",
        int,
        "most prefix components recursion asks the top-level node about (a deeper prefix is looked up "
        "by its first ones)",
        _CONFIG.recursive_max_depth,
    ),
    Option(
        "--native-port",
        "RESOLVER_NATIVE_PORT",
        "native_port",
        int,
        "UDP and TCP port of the native Handle protocol (0: off)",
        _CONFIG.native_port,
    ),
    Option(
        "--native-udp-rate",
        "RESOLVER_NATIVE_UDP_RATE",
        "native_udp_rate",
        float,
        "native UDP answers/s per client network, /24 or /56 (0 = off)",
        _CONFIG.native_udp_rate,
    ),
    Option(
        "--native-udp-burst",
        "RESOLVER_NATIVE_UDP_BURST",
        "native_udp_burst",
        int,
        "burst of the native UDP answer limit",
        _CONFIG.native_udp_burst,
    ),
    Option(
        "--native-udp-slip",
        "RESOLVER_NATIVE_UDP_SLIP",
        "native_udp_slip",
        int,
        "past the UDP limit, every Nth request gets a short 'use TCP' error, the rest none (0 = none)",
        _CONFIG.native_udp_slip,
    ),
    Option(
        "--read-dsn",
        "RESOLVER_READ_DSN",
        "read_dsn",
        str,
        "a Postgres replica for cache misses (writes and auth=true reads use --dsn)",
    ),
    Option("--host", "RESOLVER_HOST", "host", str, "address to listen on", _CONFIG.host),
    Option("--port", "RESOLVER_PORT", "port", int, "port to listen on", _CONFIG.port),
    Option("--workers", "RESOLVER_WORKERS", "workers", int, "worker processes", os.cpu_count() or 1),
    *DATABASE_OPTIONS,
    NODE_PREFIX_OPTION,
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
        "--header-timeout",
        "RESOLVER_HEADER_TIMEOUT",
        "header_timeout",
        float,
        "seconds a new connection has to send its first request header (0: no limit)",
        _CONFIG.header_timeout,
    ),
    Option(
        "--keepalive-timeout",
        "RESOLVER_KEEPALIVE_TIMEOUT",
        "keepalive_timeout",
        float,
        "seconds an idle keep-alive connection (or a later request's header) may take",
        _CONFIG.keepalive_timeout,
    ),
    Option(
        "--body-timeout",
        "RESOLVER_BODY_TIMEOUT",
        "body_timeout",
        float,
        "seconds a request body may take to arrive (408 after that)",
        _CONFIG.body_timeout,
    ),
    Option(
        "--max-connections-per-address",
        "RESOLVER_MAX_CONNECTIONS_PER_ADDRESS",
        "max_connections_per_address",
        int,
        "connections one client address may hold open, for the node (0: no cap; behind a proxy, "
        "set it above the proxy's connection pool)",
        _CONFIG.max_connections_per_address,
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
        "--server-header",
        "RESOLVER_SERVER_HEADER",
        "server_header",
        _header_value,
        "the Server header of every answer (aiohttp's own names the Python and aiohttp versions)",
        _CONFIG.server_header,
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
        "--cache-ttl-floor",
        "RESOLVER_CACHE_TTL_FLOOR",
        "cache.ttl_floor",
        float,
        "shortest time in seconds a handle stays cached, whatever its TTL (changes invalidate it at once)",
        _CACHE.ttl_floor,
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
        "--max-batch-items",
        "RESOLVER_MAX_BATCH_ITEMS",
        "max_batch_items",
        int,
        "most items in one enterprise API batch call",
        _CONFIG.max_batch_items,
    ),
    Option(
        "--max-batch-body-bytes",
        "RESOLVER_MAX_BATCH_BODY_BYTES",
        "limits.max_batch_body_bytes",
        int,
        "largest batch request body in bytes",
        _LIMITS.max_batch_body_bytes,
    ),
    Option(
        "--token-ttl",
        "RESOLVER_TOKEN_TTL",
        "token_ttl",
        float,
        "seconds an enterprise API token stays valid",
        _CONFIG.token_ttl,
    ),
    Option(
        "--search-types",
        "RESOLVER_SEARCH_TYPES",
        "search_types",
        _types,
        "value types reverse lookup can search (comma-separated)",
        ",".join(_CONFIG.search_types),
    ),
    Option(
        "--search-concurrency",
        "RESOLVER_SEARCH_CONCURRENCY",
        "search_concurrency",
        int,
        "reverse lookups running at once, per worker (others wait their turn)",
        _CONFIG.search_concurrency,
    ),
    Option(
        "--search-per-credential",
        "RESOLVER_SEARCH_PER_CREDENTIAL",
        "search_per_credential",
        int,
        "reverse lookups one tenant may run at once in the node, all workers and instances (more: 429)",
        _CONFIG.search_per_credential,
    ),
    Option(
        "--search-timeout",
        "RESOLVER_SEARCH_TIMEOUT",
        "search_timeout",
        float,
        "seconds a reverse lookup may take, its wait included, before it is stopped (503)",
        _CONFIG.search_timeout,
    ),
    Option(
        "--rate-per-address",
        "RESOLVER_RATE_PER_ADDRESS",
        "rate.per_address",
        float,
        "requests/s per client address (not counting resolutions; 0 = off)",
        _RATE.per_address,
    ),
    Option(
        "--rate-per-address-burst",
        "RESOLVER_RATE_PER_ADDRESS_BURST",
        "rate.per_address_burst",
        int,
        "burst of the per-address limit",
        _RATE.per_address_burst,
    ),
    Option(
        "--rate-per-credential",
        "RESOLVER_RATE_PER_CREDENTIAL",
        "rate.per_credential",
        float,
        "requests/s per credential (0 = off)",
        _RATE.per_credential,
    ),
    Option(
        "--rate-per-credential-burst",
        "RESOLVER_RATE_PER_CREDENTIAL_BURST",
        "rate.per_credential_burst",
        int,
        "burst of the per-credential limit",
        _RATE.per_credential_burst,
    ),
    Option(
        "--rate-resolve-per-address",
        "RESOLVER_RATE_RESOLVE_PER_ADDRESS",
        "rate.resolve_per_address",
        float,
        "resolutions/s per client address that reach the database (0 = off)",
        _RATE.resolve_per_address,
    ),
    Option(
        "--rate-resolve-per-address-burst",
        "RESOLVER_RATE_RESOLVE_PER_ADDRESS_BURST",
        "rate.resolve_per_address_burst",
        int,
        "burst of the resolution limit",
        _RATE.resolve_per_address_burst,
    ),
    Option(
        "--rate-failed-auth-per-identity-address",
        "RESOLVER_RATE_FAILED_AUTH_PER_IDENTITY_ADDRESS",
        "rate.failed_auth_per_identity_address",
        float,
        "failed authentications/s per identity and client address (0 = off)",
        _RATE.failed_auth_per_identity_address,
    ),
    Option(
        "--rate-failed-auth-per-identity-address-burst",
        "RESOLVER_RATE_FAILED_AUTH_PER_IDENTITY_ADDRESS_BURST",
        "rate.failed_auth_per_identity_address_burst",
        int,
        "burst of the per-identity-and-address failed authentication limit",
        _RATE.failed_auth_per_identity_address_burst,
    ),
    Option(
        "--rate-failed-auth-per-address",
        "RESOLVER_RATE_FAILED_AUTH_PER_ADDRESS",
        "rate.failed_auth_per_address",
        float,
        "failed authentications/s per client address, any identity (0 = off)",
        _RATE.failed_auth_per_address,
    ),
    Option(
        "--rate-failed-auth-per-address-burst",
        "RESOLVER_RATE_FAILED_AUTH_PER_ADDRESS_BURST",
        "rate.failed_auth_per_address_burst",
        int,
        "burst of the per-address failed authentication limit",
        _RATE.failed_auth_per_address_burst,
    ),
    Option(
        "--rate-failed-auth-per-identity",
        "RESOLVER_RATE_FAILED_AUTH_PER_IDENTITY",
        "rate.failed_auth_per_identity",
        float,
        "failed authentications/s per identity, any address; addresses where it authenticated recently are exempt (0 = off)",
        _RATE.failed_auth_per_identity,
    ),
    Option(
        "--rate-failed-auth-per-identity-burst",
        "RESOLVER_RATE_FAILED_AUTH_PER_IDENTITY_BURST",
        "rate.failed_auth_per_identity_burst",
        int,
        "burst of the per-identity failed authentication limit",
        _RATE.failed_auth_per_identity_burst,
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
        flag_like: dict[str, Any] = {"nargs": "?", "const": True} if option.kind is _bool else {}
        parser.add_argument(
            option.flag,
            **flag_like,
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
    rate: dict[str, Any] = {}
    for option in options:
        value = getattr(args, option.target.replace(".", "__"))
        if value is None:
            continue
        group, _, name = option.target.rpartition(".")
        {"": top, "limits": limits, "cache": cache, "rate": rate}[group][name] = value
    config = Config(**top)
    return replace(
        config,
        limits=replace(config.limits, **limits),
        cache=replace(config.cache, **cache),
        rate=replace(config.rate, **rate),
    )


BULK_OPTIONS = [*DATABASE_OPTIONS, NODE_PREFIX_OPTION]
# what the site record is made of (`resolver siteinfo`)
SITE_OPTIONS = [
    o for o in SERVE_OPTIONS if o.target in ("host", "port", "native_port", "public_url", "node_prefix")
]


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
    load = commands.add_parser(
        "import",
        help="bulk-import identifiers from CSV or JSON Lines",
        description=(
            "Import identifiers from a file, one per row, resuming an interrupted import of the same file. "
            "CSV: a header 'handle,<index>:<TYPE>,...' (or with --template, the template's idType or item "
            "names as columns, or 'handle,values' with a JSON array); JSON Lines: "
            '{"handle": ..., "templateVersion": ..., "value": [...]} per line. '
            "Rejected rows go to FILE.rejected.csv with their reasons."
        ),
    )
    load.add_argument("file", type=Path, help="the CSV or JSON Lines file")
    load.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file name")
    load.add_argument("--template", help="template version every row is registered with (CSV)")
    load.add_argument("--report", type=Path, help="where rejected rows go [default FILE.rejected.csv]")
    load.add_argument("--chunk-rows", type=int, default=50_000, help="rows per transaction [default 50000]")
    load.add_argument(
        "--writers",
        type=int,
        default=1,
        help="chunks written at once, one connection each [default 1; more cores: more]",
    )
    _add(load, BULK_OPTIONS)
    report = commands.add_parser(
        "stats",
        help="how the node stands against the policy thresholds",
        description="Yesterday's and the 30-day average resolutions against 10 million a day, this year's "
        "and the projected registrations against 30 million a year, per node and per prefix.",
    )
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.add_argument(
        "--reconcile",
        metavar="DAY",
        help="compare a day's counted registrations (YYYY-MM-DD) with the identifiers table",
    )
    _add(report, DATABASE_OPTIONS)
    siteinfo = commands.add_parser(
        "siteinfo",
        help="print this node's site record (siteinfo.json)",
        description="Print the site record as Handle clients read it from a siteinfo.json, so that a "
        "client can be pointed at this node without the global registry.",
    )
    _add(siteinfo, SITE_OPTIONS)
    upstream = commands.add_parser(
        "upstream",
        help="the messages for the top-level node",
        description="status: what the outbox holds and has delivered; resync: queue every enabled "
        "prefix record and the last 30 days of statistics again.",
    )
    upstream.add_argument("action", choices=["status", "resync"])
    upstream.add_argument("--json", action="store_true", help="print JSON (status)")
    _add(upstream, [*BULK_OPTIONS, *UPSTREAM_OPTIONS])
    dump = commands.add_parser(
        "export",
        help="export the identifiers under a prefix",
        description="Export every identifier under a prefix, in the format import reads.",
    )
    dump.add_argument("--prefix", required=True, help="the prefix to export, e.g. 88.123.45")
    dump.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="[default jsonl]")
    dump.add_argument("--output", "-o", type=Path, help="file to write [default: standard output]")
    _add(dump, BULK_OPTIONS)
    return root


def _serve(args: argparse.Namespace, config: Config) -> int:
    from resolver.server import serve

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
    try:
        return serve(config)
    except Exception as exc:  # a clear line instead of a traceback for configuration errors
        from resolver.services.bootstrap import BootstrapError
        from resolver.store.migrations import SchemaTooNew

        if isinstance(exc, BootstrapError | SchemaTooNew):
            print(f"resolver: {exc}", file=sys.stderr)
            return 2
        raise


def _siteinfo(args: argparse.Namespace, config: Config) -> int:
    import orjson

    from resolver.upstream.site import site_record

    print(orjson.dumps(site_record(config), option=orjson.OPT_INDENT_2).decode())
    return 0


def _migrate_command(args: argparse.Namespace, config: Config) -> int:
    return _migrate(config)


@contextlib.contextmanager
def _database(config: Config) -> Iterator[Config]:
    """`config` with a DSN: the given one, or that of the embedded Postgres, stopped afterwards."""
    if config.dsn is not None:
        yield config
        return
    from resolver.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(config.data_dir)
    try:
        yield replace(config, dsn=embedded.start())
    finally:
        embedded.stop()


def _bulk(args: argparse.Namespace, config: Config) -> int:
    import uvloop

    with _database(config) as config:
        try:
            return uvloop.run(_run_bulk(args, config))
        except (ValueError, OSError) as exc:
            print(f"resolver {args.command}: {exc}", file=sys.stderr)
            return 2


async def _run_bulk(args: argparse.Namespace, config: Config) -> int:
    import getpass

    from resolver.bulk.importer import Importer, Progress, export
    from resolver.store.connections import wait_for_database
    from resolver.store.migrations import migrate

    assert config.dsn is not None
    conn = await wait_for_database(config.dsn, attempts=10)
    try:
        await migrate(conn)
        if args.command == "export":
            if args.output is None:
                count = await export(config, conn, args.prefix, sys.stdout, args.format)
            else:
                from resolver.bulk.userfiles import create

                with create(args.output) as out:  # replaces a link there, never writes through it
                    count = await export(config, conn, args.prefix, out, args.format)
            print(f"resolver export: {count} identifiers", file=sys.stderr)
            return 0
        importer = Importer(config, conn, actor=f"import:{getpass.getuser()}")
        result = await importer.run(
            args.file,
            fmt=args.format,
            template_version=args.template,
            report=args.report,
            chunk_rows=args.chunk_rows,
            progress=Progress(args.file.stat().st_size),
            writers=max(1, args.writers),
        )
        print(
            f"resolver import: {result.accepted + result.rejected} rows ({result.accepted} accepted, {result.rejected} rejected"
            f"{f', resumed after row {result.resumed_from}' if result.resumed_from else ''}) "
            f"in {result.seconds:.1f} s; rejected rows: {result.report}",
            file=sys.stderr,
        )
        return 0
    finally:
        await conn.close()


def _stats(args: argparse.Namespace, config: Config) -> int:
    from datetime import date

    import orjson

    from resolver.services.statistics import reconcile, render, standing
    from resolver.store.open import open_store

    async def run(config: Config) -> int:
        async with open_store(config, single=True) as store:
            if args.reconcile:
                rows = await reconcile(store, date.fromisoformat(args.reconcile))
                print(f"{'prefix':<18} {'counted':>10} {'still stored':>13}")
                for prefix, counted, present in rows:
                    print(f"{prefix:<18} {counted:>10,} {present:>13,}")
                return 0
            report = await standing(store)
            print(
                orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode()
                if args.json
                else render(report)
            )
            return 0

    with _database(config) as config:
        return asyncio.run(run(config))


def _upstream(args: argparse.Namespace, config: Config) -> int:
    import orjson

    from resolver.store.connections import wait_for_database
    from resolver.store.migrations import migrate
    from resolver.upstream.toplevel import resync, status

    async def run(config: Config) -> int:
        assert config.dsn is not None
        conn = await wait_for_database(config.dsn, attempts=10)
        try:
            await migrate(conn)
            if args.action == "resync":
                prefixes, days = await resync(conn, config)
                print(f"resolver upstream: queued {prefixes} prefix records and {days} days of statistics")
                return 0
            state = await status(conn)
            if args.json:
                print(orjson.dumps(state.to_json(), option=orjson.OPT_INDENT_2).decode())
                return 0
            print(f"upstream: {config.upstream_url or '(none configured: messages wait in the outbox)'}")
            print(
                f"pending {state.pending}, oldest {state.oldest_seconds:.0f} s; delivered {state.delivered}"
            )
            print(f"last delivery: {state.last_delivery.isoformat() if state.last_delivery else 'never'}")
            for m in state.messages:
                print(
                    f"  #{m['id']} {m['kind']:<10} {m['lane']:<24} attempts {m['attempts']} {m['lastError'] or ''}"
                )
            return 0
        finally:
            await conn.close()

    with _database(config) as config:
        return asyncio.run(run(config))


def _migrate(config: Config) -> int:
    from resolver.server import run_migrations

    with _database(config) as config:
        version = asyncio.run(run_migrations(config))
    print(f"resolver: schema at version {version}")
    return 0


Command = Callable[[argparse.Namespace, Config], int]
# Every subcommand: the options its configuration is built from, and what runs it.
COMMANDS: dict[str, tuple[list[Option], Command]] = {
    "serve": (SERVE_OPTIONS, _serve),
    "migrate": (DATABASE_OPTIONS, _migrate_command),
    "import": (BULK_OPTIONS, _bulk),
    "export": (BULK_OPTIONS, _bulk),
    "stats": (DATABASE_OPTIONS, _stats),
    "siteinfo": (SITE_OPTIONS, _siteinfo),
    "upstream": ([*BULK_OPTIONS, *UPSTREAM_OPTIONS], _upstream),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from resolver.logs import setup_logging

    setup_logging()
    options, run = COMMANDS[args.command]
    return run(args, build_config(args, options))
