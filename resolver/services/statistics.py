"""Threshold evidence: daily counts per prefix, and how the node stands against the policy.

Each worker counts resolutions, not-found answers and registrations per prefix in memory (a dict
addition per request) and adds them to `daily_counts` every few seconds, off the hot path; a crash
loses at most those seconds. Registrations reconcile with the identifiers table by creation day.

Anyone can ask for any handle, so the counts name only what the node serves: its own prefix and
the allocated enterprise prefixes (`ServedPrefixes.label`). A not-found answer for anything else
(an unknown prefix, a sub-prefix nobody was given, another node's handle through recursion) counts
in the one `OTHER` row; recursive resolutions of other nodes' identifiers are theirs to count
(`resolver_recursive_resolutions` on /metrics has them). A worker keeps the prefixes it saw as they
were sent, at most `MAX_PENDING_PREFIXES` of them per flush, and labels them when it flushes, with
the allocations read just then: a prefix allocated through any worker of any instance is counted
under its own name by every worker from its next flush on, the requests since its allocation
included. Rows therefore stay bounded whatever clients send: per worker in memory, per day in
`daily_counts`, in `/api/stats` and in the statistics for the top-level node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from resolver.core.handles import PREFIX_NA, fold
from resolver.metrics import NodeMetrics
from resolver.store import statistics as counts_store
from resolver.store.handles import HandleStore
from resolver.store.statistics import Counts

log = logging.getLogger(__name__)

# Local policy: 30 million new registrations a year, 10 million resolutions a day on average.
REGISTRATIONS_PER_YEAR = 30_000_000
RESOLUTIONS_PER_DAY = 10_000_000
FLUSH_SECONDS = 5.0
# The row of the not-found answers for prefixes the node does not serve. No prefix can be named
# so under the node prefix, and out of it nothing else is counted.
OTHER = "other"
# Distinct prefixes as sent that a worker keeps between two flushes; past them a new prefix is
# labelled at once, with the allocations of the last flush.
MAX_PENDING_PREFIXES = 1000


def today() -> date:
    return datetime.now(UTC).date()


class ServedPrefixes:
    """The prefixes the node counts under their own names: its own and the allocated ones."""

    def __init__(self, node_prefix: str, allocated: Iterable[str] = ()) -> None:
        self.node_prefix = fold(node_prefix)
        self.allocated = frozenset(fold(p) for p in allocated)
        self._labels = self.allocated | {self.node_prefix, OTHER}

    def label(self, prefix: str, found: bool) -> str | None:
        """The row that counts a handle of `prefix` (case-folded): the nearest allocated prefix
        at or above it; else, for an identifier that exists here (or a prefix record), the node
        prefix; else, for a not-found answer, the node prefix itself or `OTHER`. None for an
        identifier of another node (resolved through recursion): not ours to count."""
        if prefix in self._labels:
            return None if found and prefix == OTHER else prefix
        parent = prefix
        while True:
            cut = parent.rfind(".")
            if cut < 0:
                break
            parent = parent[:cut]
            if parent in self.allocated:
                return parent
            if parent == self.node_prefix:
                return parent if found else OTHER
        if not found:
            return OTHER
        return self.node_prefix if prefix == PREFIX_NA else None

    def fold_counts(self, counts: dict[str, list[int]]) -> dict[str, list[int]]:
        """Counts per prefix as sent -> counts per label."""
        labelled: dict[str, list[int]] = {}
        for prefix, (registered, resolved, missing) in counts.items():
            if registered or resolved:
                name = self.label(prefix, True)
                if name is not None:
                    row = labelled.setdefault(name, [0, 0, 0])
                    row[0] += registered
                    row[1] += resolved
            if missing:
                name = self.label(prefix, False) or OTHER
                labelled.setdefault(name, [0, 0, 0])[2] += missing
        return labelled


class DailyCounter:
    """One worker's counts since its last flush, per prefix."""

    def __init__(self, node_prefix: str) -> None:
        self.served = ServedPrefixes(node_prefix)
        # prefix as sent (or, past MAX_PENDING_PREFIXES, its label) -> [registrations,
        # resolutions, not found]
        self.counts: dict[str, list[int]] = {}

    def _new_row(self, prefix: str, found: bool) -> list[int]:
        counts = self.counts
        if len(counts) >= MAX_PENDING_PREFIXES:
            name = self.served.label(prefix, found)
            if name is None:
                return [0, 0, 0]  # not counted
            row = counts.get(name)
            if row is not None:
                return row
            prefix = name
        row = counts[prefix] = [0, 0, 0]
        return row

    def resolved(self, prefix: str) -> None:
        row = self.counts.get(prefix)
        if row is None:
            row = self._new_row(prefix, True)
        row[1] += 1

    def not_found(self, prefix: str) -> None:
        row = self.counts.get(prefix)
        if row is None:
            row = self._new_row(prefix, False)
        row[2] += 1

    def registered(self, prefix: str, count: int = 1) -> None:
        row = self.counts.get(prefix)
        if row is None:
            row = self._new_row(prefix, True)
        row[0] += count

    async def refresh(self, store: HandleStore) -> None:
        """Read the allocated prefixes again."""
        self.served = ServedPrefixes(self.served.node_prefix, await counts_store.allocated_prefixes(store))

    async def flush(self, store: HandleStore, day: date | None = None) -> None:
        """Add the counts, labelled with the allocations as they are now, to `daily_counts`; on
        failure they are kept for the next try."""
        if not self.counts:
            return
        await self.refresh(store)
        counts, self.counts = self.counts, {}
        labelled = self.served.fold_counts(counts)
        try:
            await counts_store.add_daily_counts(
                store, day or today(), {prefix: Counts(*row) for prefix, row in labelled.items()}
            )
        except Exception:
            for prefix, row in labelled.items():  # labels are their own labels
                mine = self.counts.setdefault(prefix, [0, 0, 0])
                for i in range(3):
                    mine[i] += row[i]
            raise


async def fold_unserved(store: HandleStore, node_prefix: str) -> None:
    """Relabel rows of `daily_counts` written for prefixes the node does not serve (by versions
    before the labels, or by an import under a prefix nobody was given) as `ServedPrefixes.label`
    would have: into the enterprise prefix above, the node prefix, or `OTHER`. Idempotent; when
    several workers do it at once, the first one moves the rows and the others find none."""
    await counts_store.fold_unserved(store, fold(node_prefix), OTHER, PREFIX_NA)


GAUGE_EVERY = 6  # flushes between refreshes of the threshold gauges (30 s)


async def keep_flushing(counter: DailyCounter, store: HandleStore, metrics: NodeMetrics) -> None:
    """Run until cancelled: flush every few seconds (a failed flush keeps its counts), and keep
    the threshold gauges of /metrics current."""
    rounds = 0
    try:
        await counter.refresh(store)
        await fold_unserved(store, counter.served.node_prefix)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the next start tries again; counting goes on meanwhile
        log.warning("could not relabel the daily counts of unserved prefixes: %s", exc)
    while True:
        try:
            if rounds % GAUGE_EVERY == 0:
                metrics.set_standing((await standing(store)).node_json())
                metrics.identifiers.set(await counts_store.identifiers_estimate(store))
            # Every round, and from the start: the backlog is in the database whether or not this
            # worker delivers (or a top-level node is configured at all).
            metrics.set_outbox(*await counts_store.outbox_totals(store))
            await asyncio.sleep(FLUSH_SECONDS)
            rounds += 1
            await counter.flush(store)
            await store.ping()
            metrics.database_up.set(1)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be away; counts wait for the next round
            metrics.database_up.set(0)
            log.warning("could not write daily counts yet: %s", exc)
            await asyncio.sleep(FLUSH_SECONDS)


@dataclass
class Standing:
    """How the node (or one prefix) stands against the thresholds."""

    resolutions_yesterday: int = 0
    resolutions_30d_average: float = 0.0
    registrations_year: int = 0
    registrations_projected: float = 0.0
    not_found_yesterday: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "resolutionsYesterday": self.resolutions_yesterday,
            "resolutions30dAverage": round(self.resolutions_30d_average, 1),
            "resolutionsThresholdPerDay": RESOLUTIONS_PER_DAY,
            "resolutionsRatio": round(self.resolutions_30d_average / RESOLUTIONS_PER_DAY, 6),
            "registrationsThisYear": self.registrations_year,
            "registrationsProjectedYear": round(self.registrations_projected),
            "registrationsThresholdPerYear": REGISTRATIONS_PER_YEAR,
            "registrationsRatio": round(self.registrations_projected / REGISTRATIONS_PER_YEAR, 6),
            "notFoundYesterday": self.not_found_yesterday,
        }


@dataclass
class Report:
    day: date
    node: Standing
    prefixes: dict[str, Standing] = field(default_factory=dict)
    counting_since: date | None = None  # the first day in daily_counts

    @property
    def counted_days(self) -> int:
        """Closed days since the first count: the history the averages and projections stand on."""
        return 0 if self.counting_since is None else max(0, (self.day - self.counting_since).days)

    def node_json(self) -> dict[str, Any]:
        return {
            **self.node.to_json(),
            "countedDays": self.counted_days,
            "countingSince": None if self.counting_since is None else self.counting_since.isoformat(),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "node": self.node_json(),
            "prefixes": {p: s.to_json() for p, s in sorted(self.prefixes.items())},
        }


async def standing(store: HandleStore, on: date | None = None) -> Report:
    """Yesterday's and the 30-day average resolutions, this year's and the projected registrations.

    A node younger than the windows is measured over the days it has counted: the average over
    its closed days (not 30), the projection from its pace since its first day this year (not
    since 1 January), so a node that started last week is not reported at a fraction of its pace.
    `counted_days` says how much history that is (the alert rules wait for 30 days of it).
    """
    day = on or today()
    yesterday = day - timedelta(days=1)
    year_start = date(day.year, 1, 1)
    days_in_year = (date(day.year + 1, 1, 1) - year_start).days
    first = await counts_store.first_counted_day(store)
    report = Report(day, Standing(), counting_since=first)
    window = max(1, min(30, report.counted_days))
    elapsed_days = (day - max(year_start, first or day)).days + 1

    def of(prefix: str) -> Standing:
        return report.prefixes.setdefault(prefix, Standing())

    for row in await counts_store.counts_between(store, yesterday, yesterday):
        of(row.prefix).resolutions_yesterday = row.resolutions
        of(row.prefix).not_found_yesterday = row.not_found
    for row in await counts_store.counts_between(store, day - timedelta(days=30), yesterday):
        of(row.prefix).resolutions_30d_average = row.resolutions / window
    for row in await counts_store.counts_between(store, year_start, day):
        of(row.prefix).registrations_year = row.registrations
        of(row.prefix).registrations_projected = row.registrations * days_in_year / elapsed_days
    node = report.node
    for s in report.prefixes.values():
        node.resolutions_yesterday += s.resolutions_yesterday
        node.not_found_yesterday += s.not_found_yesterday
        node.resolutions_30d_average += s.resolutions_30d_average
        node.registrations_year += s.registrations_year
        node.registrations_projected += s.registrations_projected
    return report


async def reconcile(store: HandleStore, day: date) -> list[tuple[str, int, int]]:
    """(prefix, registrations counted, identifiers created that day and still there) for a day.

    Counted registrations can exceed what is still there (deletions), never fall short of it by
    more than the last seconds before a crash.
    """
    counted = await counts_store.registered_on(store, day)
    present = await counts_store.created_on(store, day)
    return [(p, counted.get(p, 0), present.get(p, 0)) for p in sorted(counted.keys() | present.keys())]


def render(report: Report) -> str:
    """The report as a terminal table."""
    rows = [("node", report.node), *sorted(report.prefixes.items())]
    lines = [
        f"standing on {report.day.isoformat()} (UTC) against 10,000,000 resolutions/day and 30,000,000 registrations/year",
        (
            "nothing counted yet"
            if report.counting_since is None
            else f"counted since {report.counting_since.isoformat()}: {report.counted_days} closed days"
            + ("" if report.counted_days >= 30 else " (averages and projections over those days alone)")
        ),
        f"{'prefix':<18} {'resolved yesterday':>19} {'30-day avg/day':>15} {'of 10M':>8} "
        f"{'registered ' + str(report.day.year):>17} {'projected':>13} {'of 30M':>8}",
    ]
    for name, s in rows:
        lines.append(
            f"{name:<18} {s.resolutions_yesterday:>19,} {s.resolutions_30d_average:>15,.0f} "
            f"{s.resolutions_30d_average / RESOLUTIONS_PER_DAY:>8.2%} {s.registrations_year:>17,} "
            f"{s.registrations_projected:>13,.0f} {s.registrations_projected / REGISTRATIONS_PER_YEAR:>8.2%}"
        )
    return "\n".join(lines)
