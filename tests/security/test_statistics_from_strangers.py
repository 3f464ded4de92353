"""Statistics that strangers can write: anonymous requests must not add prefixes to the daily
statistics, to what the node reports to the top-level node, or to the Prometheus labels.

Seen before the fix: after a fan-out of random recursive requests `/api/stats` listed 3,199
prefixes (1.04 MB) such as `7.7.7`, and every local 404 for `88.123.<random>/x` added a row of its
own to `daily_counts` and to the statistics message for the top-level node. Now the counts name
only the prefixes the node serves (the node prefix and the allocated enterprise prefixes, one
allocated while the node runs included) and one bucket, `other`, for the not-found answers of
everything else; HTTP methods outside a fixed set share one label.

Real process (two workers, recursion through the top-level node simulator), real sockets.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import requests

from resolver.config import Config
from resolver.services.statistics import OTHER
from resolver.store.queries import Q
from resolver.store.statistics import PrefixCounts, day_counts
from resolver.upstream.toplevel import statistics_message
from tests.helpers import NODE_PREFIX, basic
from tests.nodes import admit_over_http, free_port, start_node
from tests.simulator import start_process

pytestmark = pytest.mark.e2e

SIM_USER, SIM_SECRET = "nodes", "sim-secret"
# Methods the HTTP parser accepts (llhttp knows these); only the usual ones get labels of their own.
ODD_METHODS = ("PROPFIND", "MKCOL", "LOCK", "PURGE", "SEARCH", "REPORT", "MKCALENDAR", "UNLINK")
METHOD_LABELS = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "RESOLVE", "OTHER"}


def today_counts(dsn: str) -> dict[str, tuple[int, int, int]]:
    async def read() -> dict[str, tuple[int, int, int]]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(Q["day_counts"], datetime.now(UTC).date())
        finally:
            await conn.close()
        return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}

    return asyncio.run(read())


def request_methods(url: str) -> dict[str, float]:
    """Requests counted on /metrics, by method label."""
    methods: dict[str, float] = {}
    for line in requests.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("resolver_http_requests_total{"):
            method = line.partition('method="')[2].partition('"')[0]
            methods[method] = methods.get(method, 0.0) + float(line.rpartition(" ")[2])
    return methods


def put(url: str, handle: str, auth: dict[str, str]) -> None:
    answer = requests.put(
        f"{url}/api/handles/{handle}",
        json={"values": [{"index": 1, "type": "URL", "data": f"https://example.com/{handle}"}]},
        headers=auth,
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text


def test_anonymous_fan_out_leaves_only_served_prefixes_in_the_statistics(fresh_database: str, tmp_path: Path):
    sim_port = free_port()
    sim = start_process(sim_port, tmp_path / "simulator.log", "--user", SIM_USER, "--secret", SIM_SECRET)
    upstream = ("--upstream-url", f"http://127.0.0.1:{sim_port}")
    upstream += ("--upstream-user", SIM_USER, "--upstream-secret", SIM_SECRET)
    node = start_node(tmp_path, "--workers", "2", "--dsn", fresh_database, "--recursive", *upstream)
    rng = random.Random(13)
    try:
        url = node.url
        secret45 = admit_over_http(url, "88.123.45", 45, "user45", "password-45")
        put(url, "88.123/P-0", basic())
        put(url, "88.123.45/P-1", basic("300:0.NA/88.123.45", secret45))
        session = requests.Session()
        expected_other = 0

        def get(path: str, status: int) -> None:
            answer = session.get(f"{url}{path}", timeout=30, allow_redirects=False)
            assert answer.status_code == status, (path, answer.status_code, answer.text[:300])

        # Strangers: other nodes' handles through recursion, unknown prefixes under the node
        # prefix, through both faces.
        for _ in range(120):
            get(f"/api/handles/{rng.randrange(1, 99)}.{rng.randrange(10**6)}.{rng.randrange(10**6)}/x", 404)
            get(f"/api/handles/88.123.{rng.randrange(10**9)}/x", 404)
            get(f"/88.123.{rng.randrange(10**9)}/x", 404)
            expected_other += 3
        # An allocated prefix's own not-found answers, its sub-prefixes included, count for it.
        for i in range(30):
            get(f"/api/handles/88.123.45/NOPE-{i}", 404)
            get(f"/api/handles/88.123.45.{rng.randrange(10**9)}/x", 404)
        for _ in range(20):
            get("/api/handles/88.123.45/P-1", 200)
            get("/88.123.45/P-1?noredirect", 200)
            get("/api/handles/88.123/P-0", 200)
        get("/api/handles/88.123/NOPE", 404)
        for method in ODD_METHODS:
            answer = session.request(method, f"{url}/api/handles/88.123/P-0", timeout=30)
            assert answer.status_code == 405, (method, answer.status_code)

        # A prefix allocated while the node runs is counted under its own name by every worker
        # (each request on a new connection, so both workers answer some).
        secret46 = admit_over_http(url, "88.123.46", 46, "user46", "password-46")
        put(url, "88.123.46/Q-1", basic("300:0.NA/88.123.46", secret46))
        for i in range(12):
            assert requests.get(f"{url}/api/handles/88.123.46/Q-1", timeout=30).status_code == 200
            assert requests.get(f"{url}/api/handles/88.123.46/NOPE-{i}", timeout=30).status_code == 404

        expected = {
            NODE_PREFIX: (1, 20, 1),
            "88.123.45": (1, 40, 60),
            "88.123.46": (1, 12, 12),
            OTHER: (0, 0, expected_other),
        }
        total = sum(sum(v[1:]) for v in expected.values())
        # Workers add their counts every 5 s; wait (bounded) until every answer is in.
        deadline = time.monotonic() + 90
        counts = today_counts(fresh_database)
        while sum(v[1] + v[2] for v in counts.values()) < total and time.monotonic() < deadline:
            time.sleep(0.5)
            counts = today_counts(fresh_database)
        print(f"\nafter {expected_other} stranger requests: {len(counts)} rows in daily_counts today")
        assert counts == expected

        stats = requests.get(f"{url}/api/stats", headers=basic(), timeout=30)
        assert stats.status_code == 200, stats.text
        listed = stats.json()["prefixes"]
        print(f"/api/stats: {len(listed)} prefixes, {len(stats.content)} bytes")
        assert set(listed) == set(expected)

        # What the node reports upward for the day (the message the deliverer sends).
        async def rows() -> list[PrefixCounts]:
            conn = await asyncpg.connect(fresh_database)
            try:
                return await day_counts(conn, datetime.now(UTC).date())
            finally:
                await conn.close()

        message = statistics_message(
            Config(node_prefix=NODE_PREFIX), datetime.now(UTC).date(), asyncio.run(rows())
        )
        assert {p["prefix"] for p in message["prefixes"]} == set(expected)
        assert message["total"]["resolutions"] == 20 + 40 + 12  # served identifiers only

        # Prometheus: methods outside the usual ones share one label (workers move their tallies
        # into /metrics once a second: wait, bounded, until the odd requests are in).
        deadline = time.monotonic() + 30
        methods = request_methods(url)
        while sum(n for m, n in methods.items() if m not in ("GET", "PUT", "POST")) < len(ODD_METHODS):
            assert time.monotonic() < deadline, methods
            time.sleep(0.2)
            methods = request_methods(url)
        assert set(methods) <= METHOD_LABELS, set(methods) - METHOD_LABELS
        assert methods["OTHER"] == len(ODD_METHODS)
    finally:
        code = node.stop()
        sim.terminate()
        sim.wait(30)
        assert code == 0, node.log.read_text()[-4000:]
