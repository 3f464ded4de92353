"""A tiny Locust run (a few seconds, 127.0.0.1) proves the benchmark scenarios execute without errors."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import ADMIN_SECRET
from tests.e2e.conftest import admit_over_http
from tests.helpers import basic

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


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
    env = {
        **os.environ,
        "SCENARIO": scenario,
        "BENCH_IDENTIFIERS": "20",
        "BENCH_MULTIPLE": "1",
        "BENCH_ADMIN_SECRET": ADMIN_SECRET,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "benchmarks" / "locustfile.py"),
            "--headless",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "3s",
            "--host",
            node.url,
            "--csv",
            str(tmp_path / "run"),
            "--only-summary",
            "--stop-timeout",
            "5",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with open(tmp_path / "run_stats.csv", encoding="utf-8") as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    assert int(rows["Aggregated"]["Request Count"]) > 0
    assert int(rows["Aggregated"]["Failure Count"]) == 0
