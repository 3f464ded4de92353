"""A tiny Locust run (a few seconds, 127.0.0.1) proves the benchmark scenarios execute without errors."""

from __future__ import annotations

import csv

import pytest
import requests

from benchmarks.__main__ import run_locust
from tests.helpers import ADMIN_SECRET, basic
from tests.nodes import admit_over_http

pytestmark = pytest.mark.e2e


def prepare(url: str) -> None:
    admin = basic()
    admit_over_http(url, "88.123.45", 91, "bench", "bench-password")
    for i in range(20):
        requests.put(
            f"{url}/api/handles/88.123/S{i}",
            json=[{"index": 1, "type": "URL", "data": f"https://example.com/{i}"}],
            headers={**admin, "Content-Type": "application/json"},
            timeout=30,
        )


@pytest.mark.parametrize("scenario", ["day", "resolution", "registration"])
def test_scenarios_run_without_errors(node, tmp_path, scenario):
    prepare(node.url)
    # the benchmark's own invocation of Locust, shortened
    prefix, code = run_locust(node.url, scenario, 3, 4, 20, 1.0, tmp_path, admin_secret=ADMIN_SECRET)
    assert code == 0
    with open(f"{prefix}_stats.csv", encoding="utf-8") as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    assert int(rows["Aggregated"]["Request Count"]) > 0
    assert int(rows["Aggregated"]["Failure Count"]) == 0
