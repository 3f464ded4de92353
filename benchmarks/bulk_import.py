"""Bulk import against raw COPY, in one run on one embedded Postgres.

1. raw: the rows, already encoded, loaded with asyncpg's `copy_records_to_table` straight into an
   empty table shaped like `handles` (same primary key and prefix index): the floor of the cost.
2. import: `resolver import FILE --template general-product-1.0` of the same rows from a CSV file,
   with everything it does (parse, validate every row against the template, COPY, search terms,
   audit, progress), into an empty `handles`.

The disk of a virtual machine makes the raw rate swing (56k to 118k rows/s for 500,000 rows within
minutes here), so the two alternate: raw, import, raw, import, ..., raw; each import is compared
with the mean of the raw loads just before and just after it, and the median of those ratios is
reported.

Usage: python benchmarks/bulk_import.py [--rows 500000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import embedded_database, run_import
from resolver.core.templates import reference_value
from resolver.core.values import DEFAULT_TTL, timestamp
from resolver.store.migrations import migrate
from resolver.store.rows import encode_values


def write_csv(path: Path, rows: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["handle", "productName", "manufacturer", "batchNumber", "URL"])
        for i in range(rows):
            writer.writerow(
                [f"88.123/BULK-{i:08d}", f"产品{i}", "测试企业", f"B{i % 100}", f"https://example.com/p/{i}"]
            )


def records(rows: int) -> list[tuple[str, str, str, str]]:
    stamp = timestamp(datetime.now(UTC))
    reference = {**reference_value("general-product-1.0"), "ttl": DEFAULT_TTL, "timestamp": stamp}
    out = []
    for i in range(rows):
        handle = f"88.123/RAW-{i:08d}"
        values = [reference] + [
            {
                "index": index,
                "type": t,
                "data": {"format": "string", "value": v},
                "ttl": DEFAULT_TTL,
                "timestamp": stamp,
            }
            for index, t, v in (
                (2000, "productName", f"产品{i}"),
                (2002, "batchNumber", f"B{i % 100}"),
                (2004, "manufacturer", "测试企业"),
                (2009, "URL", f"https://example.com/p/{i}"),
            )
        ]
        out.append((handle.lower(), handle, "88.123", encode_values(values)))
    return out


async def raw_copy(dsn: str, rows: int) -> float:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("drop table if exists handles_raw")
        await conn.execute("create table handles_raw (like handles including all)")
        data = records(rows)
        await conn.execute("checkpoint")
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "handles_raw", records=data, columns=["key", "handle", "prefix", "vals"]
        )
        elapsed = time.perf_counter() - started
        await conn.execute("drop table handles_raw")
        return rows / elapsed
    finally:
        await conn.close()


async def empty_handles(dsn: str) -> None:
    """Start each import from an empty node (and forget earlier imports of the file)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("truncate handles, search_terms, imports, import_chunks")
        await conn.execute("checkpoint")
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--writers", type=int, default=1, help="resolver import --writers [1]")
    parser.add_argument("--rounds", type=int, default=3, help="imports, each between two raw loads [3]")
    args = parser.parse_args()
    with embedded_database("resolver-bulk-") as (workdir, dsn):
        source = workdir / "products.csv"
        write_csv(source, args.rows)
        raw_rates = [asyncio.run(raw_copy(dsn, args.rows))]
        import_rates = []
        for _ in range(args.rounds):
            asyncio.run(empty_handles(dsn))
            started = time.perf_counter()
            run_import(source, dsn, "--template", "general-product-1.0", "--writers", str(args.writers))
            import_rates.append(args.rows / (time.perf_counter() - started))
            raw_rates.append(asyncio.run(raw_copy(dsn, args.rows)))
    print(
        f"{args.rows:,} rows, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, resolver import --writers {args.writers}"
    )
    print(
        "| round | raw COPY before | import (CSV, template-validated, indexed, audited) | raw COPY after | ratio |"
    )
    print("|---|---|---|---|---|")
    ratios = []
    for i, rate in enumerate(import_rates):
        before, after = raw_rates[i], raw_rates[i + 1]
        ratios.append(rate / ((before + after) / 2))
        print(f"| {i + 1} | {before:,.0f} | {rate:,.0f} | {after:,.0f} | {ratios[-1]:.2f} |")
    print(f"median ratio to raw COPY: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
