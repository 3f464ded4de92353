"""`resolver stats` and `resolver upstream`: how the node stands, and its messages upward."""

from __future__ import annotations

import argparse
import asyncio

from resolver.config import Config
from resolver.embedded import database


def stats_arguments(report: argparse.ArgumentParser) -> None:
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.add_argument(
        "--reconcile",
        metavar="DAY",
        help="compare a day's counted registrations (YYYY-MM-DD) with the identifiers table",
    )


def upstream_arguments(upstream: argparse.ArgumentParser) -> None:
    upstream.add_argument("action", choices=["status", "resync"])
    upstream.add_argument("--json", action="store_true", help="print JSON (status)")


def stats(args: argparse.Namespace, config: Config) -> int:
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

    with database(config) as config:
        return asyncio.run(run(config))


def upstream(args: argparse.Namespace, config: Config) -> int:
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

    with database(config) as config:
        return asyncio.run(run(config))
