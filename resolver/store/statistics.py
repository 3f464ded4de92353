"""Daily counts: what the workers (and the importer) add to `daily_counts`, and what the reports
read back from it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, NamedTuple, Protocol

import asyncpg
import asyncpg.pool

from resolver.store.queries import Q


class Named(Protocol):
    """Runs named statements: the handle store outside a transaction, or a write transaction (`Tx`)."""

    async def fetch_named(self, name: str, *args: object) -> list[asyncpg.Record]: ...


# What the functions here run on: a `Named`, or a raw connection (the importer's, the deliverer's).
Runner = Named | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class Counts(NamedTuple):
    """What is added for one prefix of one day."""

    registrations: int = 0
    resolutions: int = 0
    not_found: int = 0


class PrefixCounts(NamedTuple):
    """The counts of one prefix: of one day, or summed over days."""

    prefix: str
    registrations: int
    resolutions: int
    not_found: int


async def _rows(db: Runner, name: str, *args: object) -> list[Any]:
    if isinstance(db, asyncpg.Connection | asyncpg.pool.PoolConnectionProxy):
        return list(await db.fetch(Q[name], *args))
    return await db.fetch_named(name, *args)


def _prefix_counts(rows: list[Any]) -> list[PrefixCounts]:
    return [PrefixCounts(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]


async def add_daily_counts(db: Runner, day: date, counts: Mapping[str, Counts]) -> None:
    """Add `counts` (per prefix, as labelled by the caller) to the rows of `day`, in one statement
    whatever the number of prefixes; in the caller's transaction when `db` is a `Tx` or a
    connection inside one. Prefixes go in sorted order, so concurrent adders lock rows alike."""
    prefixes = sorted(counts)
    if not prefixes:
        return
    await _rows(
        db,
        "daily_add",
        [day] * len(prefixes),
        prefixes,
        [counts[p].registrations for p in prefixes],
        [counts[p].resolutions for p in prefixes],
        [counts[p].not_found for p in prefixes],
    )


async def allocated_prefixes(db: Runner) -> list[str]:
    """Every allocated enterprise prefix, whatever its state."""
    return [r[0] for r in await _rows(db, "enterprise_prefix_all")]


async def fold_unserved(db: Runner, node_prefix: str, other: str, prefix_na: str) -> None:
    """Move the rows of prefixes the node does not serve to the enterprise prefix above them, the
    node prefix (`node_prefix`, folded) or the row of the others (`other`); `prefix_na` is the
    prefix of prefix records. See the statement `daily_fold_unserved`."""
    await _rows(db, "daily_fold_unserved", node_prefix, other, prefix_na)


async def counts_between(db: Runner, first: date, last: date) -> list[PrefixCounts]:
    """The counts of every prefix summed over the days `first` to `last` (both included), by prefix."""
    return _prefix_counts(await _rows(db, "daily_range", first, last))


async def day_counts(db: Runner, day: date) -> list[PrefixCounts]:
    """The counts of every prefix on `day`, by prefix."""
    return _prefix_counts(await _rows(db, "day_counts", day))


async def counted_days(db: Runner, since: date) -> list[date]:
    """The days from `since` on that have counts, in order."""
    return [r[0] for r in await _rows(db, "counted_days", since)]


async def first_counted_day(db: Runner) -> date | None:
    """The first day anything was counted (None on a node that has counted nothing yet)."""
    rows = await _rows(db, "first_counted_day")
    return rows[0][0] if rows else None


async def outbox_totals(db: Runner) -> tuple[int, int, float]:
    """(pending, delivered, seconds the oldest pending message waits) of the upstream outbox."""
    row = (await _rows(db, "outbox_status"))[0]
    return int(row[0]), int(row[2]), float(row[1])


async def registered_on(db: Runner, day: date) -> dict[str, int]:
    """Registrations counted on `day`, per prefix."""
    return {r[0]: int(r[1]) for r in await _rows(db, "registered_per_day", day)}


async def created_on(db: Runner, day: date) -> dict[str, int]:
    """Identifiers created on `day` (UTC) and still stored, per prefix (prefix records left out)."""
    return {r[0]: int(r[1]) for r in await _rows(db, "created_per_day", day)}


async def identifiers_estimate(db: Runner) -> int:
    """The planner's estimate of the number of stored identifiers (0 before the first analyze)."""
    rows = await _rows(db, "identifiers_estimate")
    return int(rows[0][0] or 0) if rows else 0


class DayCounts(NamedTuple):
    """The counts of one day, summed over some prefixes."""

    day: date
    registrations: int
    resolutions: int
    not_found: int


async def daily_series(db: Runner, prefixes: list[str] | None, first: date, last: date) -> list[DayCounts]:
    """The counts of each day from `first` to `last` that has any, summed over `prefixes` (folded;
    None: every prefix), in day order."""
    rows = await _rows(db, "daily_series", prefixes, first, last)
    return [DayCounts(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]
