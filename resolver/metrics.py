"""Prometheus metrics, cheap on the hot path.

Requests count into plain integers and a local latency histogram (a bisect into fixed bounds); a
background task moves the deltas into prometheus-client metrics once a second. A counter increment
plus a histogram observation per request through prometheus-client would cost the hot path ~10%
(`perf-baselines.md`); an integer addition costs nothing measurable.

Under `resolver serve` the metrics live in prometheus-client's multiprocess mode: the parent gives
every worker the same directory (cleaned at start) and any worker answers `/metrics` for all of them.
"""

from __future__ import annotations

import os
import shutil
import time
from bisect import bisect_left
from collections.abc import Iterable
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds; sub-millisecond resolution where cached answers land.
DELAY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BOUNDS = (1, 10, 100, 500, 1000, 2000, 5000)
LATENCY_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
OUTCOMES = ("hit", "miss", "not_found", "refused")
# Request methods with a label of their own (RESOLVE: the native protocol); any other method a
# client sends counts as OTHER, so clients cannot add label values.
# HTTP methods, and the native protocol's operations (resolver/native/admin.py OPERATIONS)
_NATIVE_ADMIN = (
    "CREATE_HANDLE",
    "DELETE_HANDLE",
    "ADD_VALUE",
    "REMOVE_VALUE",
    "MODIFY_VALUE",
    "LIST_HANDLES",
)
METHODS = frozenset(
    (
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "DELETE",
        "OPTIONS",
        "PATCH",
        "RESOLVE",
        *_NATIVE_ADMIN,
        "CHALLENGE_ANSWER",
        "SESSION_SETUP",
        "SESSION_TERMINATE",
        "SESSION_EXCHANGEKEY",
    )
)
OUTBOX_STATES = ("pending", "delivered")
# (key in the standing's JSON, gauge, help): counts are plain numbers of identifiers or
# resolutions, ratios are 1.0 at the threshold.
STANDING_GAUGES = (
    ("resolutionsYesterday", "resolver_resolutions_yesterday", "Resolutions counted yesterday (UTC day)"),
    (
        "resolutions30dAverage",
        "resolver_resolutions_daily_average",
        "Resolutions per day, averaged over the last 30 closed days (over the days counted, when fewer)",
    ),
    (
        "resolutionsThresholdPerDay",
        "resolver_resolutions_threshold_per_day",
        "The policy threshold: resolutions per day on average",
    ),
    (
        "resolutionsRatio",
        "resolver_resolutions_threshold_ratio",
        "resolver_resolutions_daily_average / resolver_resolutions_threshold_per_day (1 = at the threshold)",
    ),
    ("notFoundYesterday", "resolver_not_found_yesterday", "Resolutions of missing handles yesterday"),
    (
        "registrationsThisYear",
        "resolver_registrations_this_year",
        "Identifiers registered this calendar year",
    ),
    (
        "registrationsProjectedYear",
        "resolver_registrations_projected_year",
        "This year's registrations at their pace so far, for the whole year",
    ),
    (
        "registrationsThresholdPerYear",
        "resolver_registrations_threshold_per_year",
        "The policy threshold: new registrations per year",
    ),
    (
        "registrationsRatio",
        "resolver_registrations_threshold_ratio",
        "resolver_registrations_projected_year / resolver_registrations_threshold_per_year (1 = at the threshold)",
    ),
    (
        "countedDays",
        "resolver_counted_days",
        "Closed days the node has counted since its first daily count: how much history the figures stand on",
    ),
)


def prepare_multiprocess_dir(path: Path) -> None:
    """Empty the shared metrics directory and point every process started from now on at it."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)


def worker_died(pid: int) -> None:
    """Drop the live gauges of a worker that is gone."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class RouteStats:
    """Counts and latency of one route, kept as plain numbers until the next flush."""

    __slots__ = ("buckets", "by_status", "total_seconds")

    def __init__(self) -> None:
        self.by_status: dict[tuple[str, str], int] = {}
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.total_seconds = 0.0

    def add(self, method: str, status: int, seconds: float) -> None:
        key = (method if method in METHODS else "OTHER", f"{status // 100}xx")
        self.by_status[key] = self.by_status.get(key, 0) + 1
        self.buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.total_seconds += seconds


class NodeMetrics:
    """The node's metrics for one worker: local tallies, flushed into prometheus-client."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # In multiprocess mode values go to the shared files whatever the registry; a registry of
        # our own keeps tests (several apps in one process) from colliding in the global one.
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.multiprocess = multiprocess
        self.requests = Counter(
            "resolver_http_requests_total",
            "HTTP requests by route template, method and status class",
            ["route", "method", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "resolver_http_request_duration_seconds",
            "Time from handler start to response, by route",
            ["route"],
            buckets=LATENCY_BOUNDS,
            registry=reg,
        )
        self.resolutions = Counter(
            "resolver_resolutions_total", "Resolutions by outcome", ["outcome"], registry=reg
        )
        self.cache_entries = Gauge(
            "resolver_cache_entries",
            "Handles in the resolution caches",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.cache_bytes = Gauge(
            "resolver_cache_bytes",
            "Estimated bytes of the resolution caches",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.cache_evictions = Counter(
            "resolver_cache_evictions_total", "Entries evicted by the bounds", registry=reg
        )
        self.cache_invalidations = Counter(
            "resolver_cache_invalidations_total", "Entries invalidated by changes", registry=reg
        )
        self.confirmations = Counter(
            "resolver_write_confirmations_total",
            "Writes that waited for every cache to confirm it forgot the old values, and those of them "
            "that stopped waiting for a cache whose lease then ran out",
            ["outcome"],
            registry=reg,
        )
        self.confirmation_seconds = Counter(
            "resolver_write_confirmation_seconds_total",
            "Seconds writes spent waiting for the caches' confirmations after their commit",
            registry=reg,
        )
        self.listen_up = Gauge(
            "resolver_change_feed_up",
            "1 while a worker's LISTEN connection is up (minimum over workers)",
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.db_lookups = Counter(
            "resolver_db_lookups",
            "Coalesced lookup queries the workers sent to Postgres",
            registry=reg,
        )
        self.db_lookup_handles = Counter(
            "resolver_db_lookup_handles",
            "Handles those lookup queries asked for (handles / queries: the coalescing)",
            registry=reg,
        )
        self.registrations = Counter(
            "resolver_registrations_total",
            "Identifier writes by API, mode and outcome",
            ["api", "mode", "outcome"],
            registry=reg,
        )
        self.lookup_seconds = Histogram(
            "resolver_db_lookup_duration_seconds",
            "Time of one coalesced lookup query",
            buckets=LATENCY_BOUNDS,
            registry=reg,
        )
        self.invalidation_delay = Histogram(
            "resolver_invalidation_delay_seconds",
            "From a change's notification to its arrival at a worker",
            buckets=DELAY_BOUNDS,
            registry=reg,
        )
        self.batch_size = Histogram(
            "resolver_batch_items",
            "Items per enterprise API batch call",
            ["operation"],
            buckets=BATCH_BOUNDS,
            registry=reg,
        )
        self.pool = Gauge(
            "resolver_db_connections",
            "Database connections of the workers by state",
            ["state"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.identifiers = Gauge(
            "resolver_identifiers",
            "Identifiers stored (Postgres' estimate, refreshed every 30 s)",
            registry=reg,
            multiprocess_mode="max",
        )
        self.start_time = Gauge(
            "resolver_start_time_seconds",
            "When the oldest live worker started",
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.start_time.set(time.time())
        self.build = Gauge(
            "resolver_build_info", "Version of the node", ["version"], registry=reg, multiprocess_mode="max"
        )
        from resolver import __version__

        self.build.labels(__version__).set(1)
        self.database_up = Gauge(
            "resolver_database_up",
            "1 while the worker's last write of its counts reached Postgres (minimum over workers)",
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.database_up.set(1)
        # The node against the policy thresholds (resolver.services.statistics.standing, the figures
        # of `resolver stats`), refreshed every 30 s from daily_counts: one gauge per figure, with its unit.
        self.standing = {
            key: Gauge(name, text, registry=reg, multiprocess_mode="max")
            for key, name, text in STANDING_GAUGES
        }
        from resolver.services.statistics import REGISTRATIONS_PER_YEAR, RESOLUTIONS_PER_DAY

        self.standing["resolutionsThresholdPerDay"].set(RESOLUTIONS_PER_DAY)
        self.standing["registrationsThresholdPerYear"].set(REGISTRATIONS_PER_YEAR)
        self.outbox = Gauge(
            "resolver_upstream_outbox",
            "Messages for the top-level node in the database: pending (undelivered) and delivered",
            ["state"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        for state in OUTBOX_STATES:  # present from the first scrape, so a backlog alert can fire
            self.outbox.labels(state).set(0)
        self.outbox_age = Gauge(
            "resolver_upstream_outbox_oldest_seconds",
            "Age of the oldest undelivered message for the top-level node (0 when none waits)",
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.tls_expiry = Gauge(
            "resolver_tls_certificate_expiry_timestamp_seconds",
            "When the HTTPS certificate in use expires (seconds since the epoch; 0 without TLS)",
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.recursive = Counter(
            "resolver_recursive_resolutions",
            "Recursive resolutions of other nodes' handles by outcome (ok, not_found, failed hop)",
            ["outcome"],
            registry=reg,
        )
        from resolver.process_metrics import ProcessStats

        self.process = ProcessStats(reg)
        # Local tallies, moved into the metrics above by flush().
        self.routes: dict[str, RouteStats] = {}
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.pending_registrations: dict[tuple[str, str, str], int] = {}
        self.batch_sizes: list[tuple[str, int]] = []

    def set_outbox(self, pending: int, delivered: int, oldest_seconds: float) -> None:
        self.outbox.labels("pending").set(pending)
        self.outbox.labels("delivered").set(delivered)
        self.outbox_age.set(oldest_seconds)

    def set_standing(self, figures: dict[str, object]) -> None:
        """The threshold gauges from a standing's JSON (`Report.node_json()`)."""
        for key, gauge in self.standing.items():
            value = figures.get(key)
            if isinstance(value, int | float):
                gauge.set(value)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request (called once per request: keep it cheap)."""
        stats = self.routes.get(route)
        if stats is None:
            stats = self.routes[route] = RouteStats()
        stats.add(method, status, seconds)

    def registered(self, api: str, mode: str, outcomes: Iterable[bool]) -> None:
        """Count identifier writes: one per item, by whether it succeeded."""
        for ok in outcomes:
            key = (api, mode, "ok" if ok else "failed")
            self.pending_registrations[key] = self.pending_registrations.get(key, 0) + 1

    def flush(
        self,
        *,
        cache_entries: int,
        cache_bytes: int,
        evictions: int,
        invalidations: int,
        listen_up: bool,
        lookups: int,
        keys_fetched: int,
        lookup_seconds: Iterable[float] = (),
        invalidation_delays: Iterable[float] = (),
        connections: dict[str, int] | None = None,
        confirmations: tuple[int, int, float] = (0, 0, 0.0),
    ) -> None:
        """Move the local tallies into the exported metrics (`confirmations`: running totals of
        writes confirmed, of those that timed out, of seconds waited)."""
        routes, self.routes = self.routes, {}
        for route, stats in routes.items():
            for (method, status), count in stats.by_status.items():
                self.requests.labels(route, method, status).inc(count)
            child = self.latency.labels(route)
            # prometheus-client keeps one (non-cumulative) counter per bucket; add our counts to them
            for index, count in enumerate(stats.buckets):
                if count:
                    child._buckets[index].inc(count)
            child._sum.inc(stats.total_seconds)
        outcomes, self.outcomes = self.outcomes, dict.fromkeys(OUTCOMES, 0)
        for outcome, count in outcomes.items():
            if count:
                self.resolutions.labels(outcome).inc(count)
        for seconds in lookup_seconds:
            self.lookup_seconds.observe(seconds)
        for seconds in invalidation_delays:
            self.invalidation_delay.observe(seconds)
        sizes, self.batch_sizes = self.batch_sizes, []
        for operation, size in sizes:
            self.batch_size.labels(operation).observe(size)
        for state, count in (connections or {}).items():
            self.pool.labels(state).set(count)
        registrations, self.pending_registrations = self.pending_registrations, {}
        for labels, count in registrations.items():
            self.registrations.labels(*labels).inc(count)
        self.cache_entries.set(cache_entries)
        self.cache_bytes.set(cache_bytes)
        self.listen_up.set(1 if listen_up else 0)
        self._advance(self.cache_evictions, evictions, "evictions")
        self._advance(self.cache_invalidations, invalidations, "invalidations")
        self._advance(self.db_lookups, lookups, "lookups")
        self._advance(self.db_lookup_handles, keys_fetched, "keys")
        self.process.refresh()
        waits, timeouts, seconds = confirmations
        self._advance(self.confirmations.labels("confirmed"), waits - timeouts, "confirmed")
        self._advance(self.confirmations.labels("timed_out"), timeouts, "timed_out")
        self._advance(self.confirmation_seconds, seconds, "confirmation_seconds")

    def _advance(self, counter: object, total: float, name: str) -> None:
        # The cache keeps running totals; export the growth since the last flush.
        seen = self.__dict__.setdefault("_seen", {})
        delta = total - seen.get(name, 0)
        if delta > 0:
            counter.inc(delta)  # type: ignore[attr-defined]
        seen[name] = total

    def exposition(self) -> bytes:
        """The text format of every worker's metrics (reads the shared files in multiprocess mode)."""
        from prometheus_client import CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))
