"""What an operator's Prometheus sees from the real `resolver serve` (two workers): every metric the
alert rules and the dashboard name is in a real scrape; the outbox gauges exist from the first scrape
and follow the database (a prefix enabled with no top-level node configured stays pending); the
threshold figures are one gauge per figure, with the history they stand on; the process metrics
cover both workers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import requests

from resolver.services.statistics import today
from tests.helpers import basic
from tests.nodes import admit_over_http, start_node
from tests.unit.test_monitoring import used_names

pytestmark = pytest.mark.e2e


def scrape(url: str) -> dict[str, float]:
    samples = {}
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def names(samples: dict[str, float]) -> set[str]:
    return {key.split("{", 1)[0] for key in samples}


def seed_counts(dsn: str, days: int, resolutions: int) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for back in range(1, days + 1):
                await conn.execute(
                    "insert into daily_counts (day, prefix, registrations, resolutions, not_found) "
                    "values ($1, '88.123', 10, $2, 0)",
                    today() - timedelta(days=back),
                    resolutions,
                )
        finally:
            await conn.close()

    asyncio.run(run())


def test_what_prometheus_scrapes_from_a_running_node(fresh_database: str, tmp_path: Path):
    seed_counts(fresh_database, 40, 2_500_000)  # 40 closed days at a quarter of the threshold
    node = start_node(tmp_path, "--workers", "2", "--dsn", fresh_database)
    try:
        first = scrape(node.url)
        # the outbox from the very first scrape, before any message
        assert first['resolver_upstream_outbox{state="pending"}'] == 0
        assert first['resolver_upstream_outbox{state="delivered"}'] == 0
        assert first["resolver_upstream_outbox_oldest_seconds"] == 0
        assert first["resolver_resolutions_threshold_per_day"] == 10_000_000
        assert first["resolver_registrations_threshold_per_year"] == 30_000_000
        assert not any(key.startswith("resolver_threshold{") for key in first)  # the old mixed gauge

        # the standing of a node with 40 days of history: one gauge per figure
        assert first["resolver_counted_days"] == 40
        assert first["resolver_resolutions_daily_average"] == 2_500_000
        assert first["resolver_resolutions_threshold_ratio"] == 0.25
        assert first["resolver_resolutions_yesterday"] == 2_500_000

        # the process metrics: both workers, summed
        assert first["resolver_worker_processes"] == 2
        assert first["process_resident_memory_bytes"] > 20_000_000  # two Python processes
        assert first["process_open_fds"] > 10 and first["process_max_fds"] > 0
        assert first["process_cpu_seconds_total"] > 0
        assert first["process_start_time_seconds"] <= time.time()

        # misses go to the database: the two lookup counters, handles at least as many as queries
        for i in range(30):
            requests.get(f"{node.url}/api/handles/88.123/SIGNAL-{i}", timeout=10)
        secret = admit_over_http(
            node.url, "88.123.45", 61, "s-user", "s-password-1"
        )  # queues a prefix message
        put = requests.put(
            f"{node.url}/api/handles/88.123.45/SIGNAL-1",
            json={"values": [{"index": 1, "type": "URL", "data": "https://example.com/s1"}]},
            headers=basic("300:0.NA/88.123.45", secret),
            timeout=10,
        )
        assert put.status_code in (200, 201), put.text
        deadline = time.monotonic() + 30
        while True:
            now = scrape(node.url)
            if (
                now['resolver_upstream_outbox{state="pending"}'] >= 1
                and now["resolver_db_lookups_total"] > 0
                and "resolver_registrations_total" in names(now)
            ):
                break
            assert time.monotonic() < deadline, "the outbox gauge never showed the pending message"
            time.sleep(0.5)
        assert now["resolver_upstream_outbox_oldest_seconds"] > 0
        assert now["resolver_db_lookup_handles_total"] >= now["resolver_db_lookups_total"]
        assert now['resolver_db_connections{state="open"}'] >= 2  # a pool per worker
        assert 'resolver_db_connections{state="in_use"}' in now

        # `resolver upstream status` reads the same table
        status = subprocess.run(
            [sys.executable, "-m", "resolver", "upstream", "status", "--dsn", fresh_database],
            capture_output=True,
            text=True,
            timeout=60,
        )
        pending = int(now['resolver_upstream_outbox{state="pending"}'])
        assert f"pending {pending}" in status.stdout, status.stdout + status.stderr

        # and every metric an alert rule or a dashboard panel queries is in this real scrape
        missing = used_names() - names(now)
        assert not missing, f"queried but not exported by the running node: {sorted(missing)}"
    finally:
        code = node.stop()
        assert code == 0, node.log.read_text()


def test_stats_of_a_young_node_stand_on_the_days_it_counted(fresh_database: str):
    seed_counts(fresh_database, 5, 1_000_000)  # a node five days old
    done = subprocess.run(
        [sys.executable, "-m", "resolver", "stats", "--json", "--dsn", fresh_database],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    import orjson

    node = orjson.loads(done.stdout)["node"]
    assert node["countedDays"] == 5
    assert node["countingSince"] == (today() - timedelta(days=5)).isoformat()
    assert node["resolutions30dAverage"] == 1_000_000  # over its 5 days, not 30
    table = subprocess.run(
        [sys.executable, "-m", "resolver", "stats", "--dsn", fresh_database],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "5 closed days (averages and projections over those days alone)" in table.stdout, table.stdout
