"""The `resolver` command. Every option can also come from the environment.

Commands: `serve` (run the node), `migrate` (apply the schema), `import` and `export` (identifiers
in bulk), `stats` (the node against the policy thresholds), `siteinfo` (this node's site record),
`upstream` (the outbox for the top-level node: status, resync), `tls` (self-signed: a first
certificate for HTTPS), `keys` (the node's key pairs: init, show, rotate), `verify` (a record's
HS_SIGNATURE checked as Handle.Net clients check it).

The options of the node's configuration are not written here: each is derived from a field of
resolver/config.py (`settings()`: its flag, environment variable, default and help). A command
names the settings it takes and may add arguments of its own (resolver/commands/).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from resolver.commands import bulk, node, reports, verify
from resolver.config import Config, Setting, settings
from resolver.config_kinds import parse_bool

SERVE_OPTIONS = settings()
_BY_TARGET = {s.target: s for s in SERVE_OPTIONS}


def _named(*targets: str) -> list[Setting]:
    return [_BY_TARGET[t] for t in targets]


DATABASE_OPTIONS = _named("dsn", "data_dir")
BULK_OPTIONS = _named("dsn", "data_dir", "node_prefix")
UPSTREAM_OPTIONS = _named("upstream_url", "upstream_user", "upstream_secret", "public_url", "key_dir")
# what the site record is made of (`resolver siteinfo`)
SITE_OPTIONS = _named(
    "host", "port", "native_port", "public_url", "node_prefix", "tls_cert", "data_dir", "key_dir"
)


def _shown(value: Any) -> Any:
    return ",".join(value) if isinstance(value, tuple) else value


def _add(parser: argparse.ArgumentParser, options: Sequence[Setting]) -> None:
    for option in options:
        env_value = os.environ.get(option.env)
        default = option.kind(env_value) if env_value not in (None, "") else option.default
        shown = "(secret)" if option.secret else _shown(default)
        flag_like: dict[str, Any] = {"nargs": "?", "const": True} if option.kind is parse_bool else {}
        parser.add_argument(
            option.flag,
            **flag_like,
            type=option.kind,
            default=default,
            dest=option.target.replace(".", "__"),
            metavar=option.flag.lstrip("-").upper().replace("-", "_"),
            help=f"{option.help} [env {option.env}; default {shown}]",
        )


def build_config(args: argparse.Namespace, options: Sequence[Setting]) -> Config:
    """A Config from parsed arguments (which already hold the environment's values)."""
    groups: dict[str, dict[str, Any]] = {"": {}, "limits": {}, "cache": {}, "rate": {}}
    for option in options:
        value = getattr(args, option.target.replace(".", "__"))
        if value is None:
            continue
        group, _, name = option.target.rpartition(".")
        groups[group][name] = value
    config = Config(**groups[""])
    return replace(
        config,
        limits=replace(config.limits, **groups["limits"]),
        cache=replace(config.cache, **groups["cache"]),
        rate=replace(config.rate, **groups["rate"]),
    )


Run = Callable[[argparse.Namespace, Config], int]


@dataclass(frozen=True)
class Command:
    """A subcommand: its help, the settings its configuration is built from, its own arguments
    and what runs it."""

    help: str
    description: str
    options: list[Setting]
    run: Run
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


COMMANDS: dict[str, Command] = {
    "serve": Command("run the node", "Run the node until SIGTERM/SIGINT.", SERVE_OPTIONS, node.serve),
    "migrate": Command(
        "apply the schema and exit", "Apply the database schema and exit.", DATABASE_OPTIONS, node.migrate
    ),
    "import": Command(
        "bulk-import identifiers from CSV or JSON Lines",
        "Import identifiers from a file, one per row, resuming an interrupted import of the same file. "
        "CSV: a header 'handle,<index>:<TYPE>,...' (or with --template, the template's idType or item "
        "names as columns, or 'handle,values' with a JSON array); JSON Lines: "
        '{"handle": ..., "templateVersion": ..., "value": [...]} per line. '
        "Rejected rows go to FILE.rejected.csv with their reasons. Rows of prefixes with trusted "
        "resolution on are signed with the node's key (--key-dir).",
        [*BULK_OPTIONS, *_named("key_dir")],
        bulk.bulk,
        bulk.import_arguments,
    ),
    "export": Command(
        "export the identifiers under a prefix",
        "Export every identifier under a prefix, in the format import reads.",
        BULK_OPTIONS,
        bulk.bulk,
        bulk.export_arguments,
    ),
    "stats": Command(
        "how the node stands against the policy thresholds",
        "Yesterday's and the 30-day average resolutions against 10 million a day, this year's "
        "and the projected registrations against 30 million a year, per node and per prefix.",
        DATABASE_OPTIONS,
        reports.stats,
        reports.stats_arguments,
    ),
    "siteinfo": Command(
        "print this node's site record (siteinfo.json)",
        "Print the site record as Handle clients read it from a siteinfo.json, so that a "
        "client can be pointed at this node without the global registry.",
        SITE_OPTIONS,
        node.siteinfo,
    ),
    "keys": Command(
        "the node's key pairs",
        "init: make the node's first key pair; show: list the keys and their states; rotate: add a "
        "key that is published at once and signs after --overlap seconds (the old one signs until then).",
        _named("data_dir", "key_dir"),
        node.keys,
        node.keys_arguments,
    ),
    "tls": Command(
        "certificates for HTTPS",
        "self-signed: write a self-signed certificate and its key (cert.pem, key.pem 0600) for a "
        "first run with --tls-cert/--tls-key; clients must be told to trust it.",
        [],
        node.tls,
        node.tls_arguments,
    ),
    "verify": Command(
        "check a record's HS_SIGNATURE as Handle.Net clients do",
        "Fetch HANDLE over the node's HTTP Handle API (no credentials), build and verify its "
        "signature's chain as hdllib's ChainBuilder/ChainVerifier do, with --trust-root keys or "
        "the node's own HS_PUBKEY values as roots, and print per index: verified, unsigned, bad "
        "digest, missing. Exit 1 on any failure.",
        _named("node_prefix"),
        verify.verify,
        verify.verify_arguments,
    ),
    "upstream": Command(
        "the messages for the top-level node",
        "status: what the outbox holds and has delivered; resync: queue every enabled "
        "prefix record and the last 30 days of statistics again.",
        [*BULK_OPTIONS, *UPSTREAM_OPTIONS],
        reports.upstream,
        reports.upstream_arguments,
    ),
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="resolver",
        description="A secondary identifier node: Handle-compatible registration and resolution.",
    )
    subparsers = root.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.description)
        if command.arguments is not None:
            command.arguments(sub)
        _add(sub, command.options)
    return root


def _log_format(args: argparse.Namespace) -> str:
    """--log-format of a command that takes it; for the others, the environment's (else text)."""
    chosen = getattr(args, "log_format", None)
    if chosen is None:
        chosen = os.environ.get(_BY_TARGET["log_format"].env, "").strip().lower()
    return "json" if chosen == "json" else "text"


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from resolver.logs import setup_logging

    setup_logging(_log_format(args))
    command = COMMANDS[args.command]
    return command.run(args, build_config(args, command.options))
