"""deploy/local-cluster: a primary and a streaming replica, two instances behind HAProxy, the
simulator; up, status, down, all on 127.0.0.1. Through HAProxy, writes and reads alternate between
the instances: a write read back at once on the other instance is found (read-your-writes across
instances with misses on the replica)."""

from __future__ import annotations

import base64
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "local-cluster"

needs_packages = not glob.glob("/usr/lib/postgresql/*/bin/initdb") or not shutil.which("haproxy")
pytestmark = pytest.mark.skipif(
    needs_packages and os.geteuid() != 0,
    reason="needs Debian's postgresql and haproxy packages, or root to install them",
)


def run(action: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), action, *extra], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def writes_read_through_the_other_instance(
    auth: dict[str, str], rounds: int, seconds: float = 240.0
) -> tuple[int, int, list[float]]:
    """`rounds` times, while two busy processes keep both cores loaded: instance 2 remembers that
    a handle does not exist, instance 1 creates it, instance 2 must find it at once; instance 2
    caches it, instance 1 changes it, instance 2 must answer the new value at once. Returns (not
    found, stale, seconds each write took). Bounded by `seconds`."""
    # each burner bounds itself (a `timeout` wrapper killed below would orphan its busy child)
    burn = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(2)]
    one, two = "http://127.0.0.1:28001", "http://127.0.0.1:28002"
    not_found = stale = 0
    took: list[float] = []
    deadline = time.monotonic() + seconds
    try:
        with requests.Session() as writer, requests.Session() as reader:
            for i in range(rounds):
                assert time.monotonic() < deadline, f"{i} rounds in {seconds} s"
                path = f"/api/handles/88.123/RYW-{i}"
                assert reader.get(two + path, timeout=10).status_code == 404
                for version in (1, 2):
                    body = {"values": [{"index": 1, "type": "URL", "data": f"https://v{version}/{i}"}]}
                    started = time.monotonic()
                    put = writer.put(one + path, json=body, headers=auth, timeout=10)
                    took.append(time.monotonic() - started)
                    assert put.status_code in (200, 201), put.text
                    got = reader.get(two + path, timeout=10)
                    if got.status_code == 404:
                        not_found += 1
                    elif got.json()["values"][0]["data"]["value"] != f"https://v{version}/{i}":
                        stale += 1
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    return not_found, stale, took


@pytest.mark.timeout(900)
def test_cluster_up_status_writes_and_reads_across_instances_down():
    # not under pytest's tmp_path: its folders are private to root, and Postgres runs as postgres
    cluster = Path(tempfile.mkdtemp(prefix="idis-cluster-")) / "cluster"
    os.chmod(cluster.parent, 0o755)
    env = {**os.environ, "CLUSTER_DIR": str(cluster), "CLUSTER_PORT_BASE": "28000"}
    started = time.monotonic()
    up = run("up", env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"up in {time.monotonic() - started:.1f} s")
        status = run("status", env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "replication streaming (sync)" in status.stdout, status.stdout
        secret = (cluster / "admin-secret").read_text().strip()
        auth = {
            "Authorization": "Basic "
            + base64.b64encode(f"{quote('300:0.NA/88.123')}:{secret}".encode()).decode()
        }
        missing = 0
        for i in range(50):
            handle = f"88.123/CLUSTER-{i}"
            put = requests.put(
                f"http://127.0.0.1:28000/api/handles/{handle}",
                json={"values": [{"index": 1, "type": "URL", "data": f"https://example.com/{i}"}]},
                headers=auth,
                timeout=10,
            )
            assert put.status_code in (200, 201), put.text
            if requests.get(f"http://127.0.0.1:28000/api/handles/{handle}", timeout=10).status_code != 200:
                missing += 1
        print(f"50 writes, each read back at once through HAProxy: {missing} not found")
        assert missing == 0
        # both instances served: HAProxy alternates between them (metrics are flushed every second)
        time.sleep(1.5)
        for port in (28001, 28002):
            metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            assert 'route="/api/handles/{handle}"' in metrics
        not_found, stale, took = writes_read_through_the_other_instance(auth, rounds=300)
        took.sort()
        print(
            f"300 rounds under CPU load (write on instance 1, read at once on instance 2): {not_found} "
            f"not found, {stale} stale; write median {took[len(took) // 2] * 1000:.1f} ms, "
            f"p99 {took[int(len(took) * 0.99)] * 1000:.1f} ms"
        )
        assert (not_found, stale) == (0, 0)
        for n in (1, 2):
            log = (cluster / f"node{n}.log").read_text()
            assert "does not wait for every replica" not in log, log[-2000:]
    finally:
        down = run("down", env, "--purge")
        assert down.returncode == 0, down.stdout + down.stderr
    assert not cluster.exists()
    cluster.parent.rmdir()
