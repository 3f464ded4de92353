"""`resolver import` and `resolver export`: identifiers in bulk, from and to files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from resolver.config import Config
from resolver.embedded import database

# `resolver import`'s exit status (README): 0 every row accepted, 1 some rows rejected (they are in
# the report), 2 a usage error or a file that cannot be read at all (nothing imported).
EXIT_ROWS_REJECTED = 1


def import_arguments(load: argparse.ArgumentParser) -> None:
    load.add_argument("file", type=Path, help="the CSV, Excel workbook (.xlsx) or JSON Lines file")
    load.add_argument("--format", choices=["csv", "xlsx", "jsonl"], help="default: from the file")
    load.add_argument("--sheet", help="the workbook's sheet to read [default: the first]")
    load.add_argument("--template", help="template version every row is registered with (CSV)")
    load.add_argument(
        "--encoding",
        help="the file's text encoding, e.g. utf-8 or gb18030 [default: UTF-8 (with or without BOM), else GB18030]",
    )
    load.add_argument(
        "--report",
        type=Path,
        help="where rejected rows go, as the file had them plus a reason, importable once fixed "
        "[default FILE.rejected.csv, or FILE.rejected.jsonl for JSON Lines]",
    )
    load.add_argument("--chunk-rows", type=int, default=50_000, help="rows per transaction [default 50000]")
    load.add_argument(
        "--writers",
        type=int,
        default=1,
        help="chunks written at once, one connection each [default 1; more cores: more]",
    )


def export_arguments(dump: argparse.ArgumentParser) -> None:
    dump.add_argument("--prefix", required=True, help="the prefix to export, e.g. 88.123.45")
    dump.add_argument(
        "--format",
        choices=["jsonl", "csv", "xlsx"],
        default="jsonl",
        help="jsonl, or csv (UTF-8 with BOM) and xlsx for spreadsheets: a column per template item [default jsonl]",
    )
    dump.add_argument("--output", "-o", type=Path, help="file to write [default: standard output]")


def bulk(args: argparse.Namespace, config: Config) -> int:
    import uvloop

    with database(config) as config:
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
            encoding=args.encoding,
            sheet=args.sheet,
        )
        if result.imported_before:
            print(
                f"resolver import: this file was imported before ({result.accepted + result.rejected} rows: "
                f"{result.accepted} accepted, {result.rejected} rejected); nothing was done"
                + (f"; rejected rows: {result.report}" if result.report and result.rejected else ""),
                file=sys.stderr,
            )
            return EXIT_ROWS_REJECTED if result.rejected else 0
        print(
            f"resolver import: {result.accepted + result.rejected} rows ({result.accepted} accepted, {result.rejected} rejected"
            f"{f', resumed after row {result.resumed_from}' if result.resumed_from else ''}) "
            f"in {result.seconds:.1f} s; "
            + (f"rejected rows: {result.report}" if result.report else "no rows rejected"),
            file=sys.stderr,
        )
        return EXIT_ROWS_REJECTED if result.rejected else 0
    finally:
        await conn.close()
