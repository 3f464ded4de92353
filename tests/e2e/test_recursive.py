"""Two of our nodes with different prefixes and the top-level node simulator, as real processes:
each node reports its enterprise prefixes upstream through its outbox, and each resolves the
other's handles recursively."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import TEMPLATE, basic, scratch_database
from tests.nodes import admit_over_http, free_port, start_node
from tests.simulator import start_process


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def second_database(template_ready: str):
    with scratch_database(template_ready, "t_", TEMPLATE) as dsn:
        yield dsn


def test_two_nodes_resolve_each_other_through_the_top_level_node(
    fresh_database: str, second_database: str, tmp_path: Path
):
    sim_port = free_port()
    sim = start_process(sim_port, tmp_path / "simulator.log", "--user", "nodes", "--secret", "sim-secret")
    upstream = f"http://127.0.0.1:{sim_port}"
    common = ("--upstream-url", upstream, "--upstream-user", "nodes", "--upstream-secret", "sim-secret")
    common += ("--recursive-allow", "127.0.0.1")  # the other node is on loopback, refused by default
    # one worker: what A resolved recursively is cached per worker, and the test reads it back after B stops
    nodes = []  # stopped at the end, also when the other one failed to start
    try:
        a = start_node(tmp_path, "--workers", "1", "--dsn", fresh_database, "--recursive", *common)
        nodes.append(a)
        b = start_node(tmp_path, "--dsn", second_database, "--node-prefix", "88.456", "--recursive", *common)
        nodes.append(b)
        secret = admit_over_http(b.url, "88.456.7", 71, "b-user", "b-password-1", node_prefix="88.456")
        put = requests.put(
            f"{b.url}/api/handles/88.456.7/P-1",
            json={"values": [{"index": 1, "type": "URL", "data": "https://example.com/p1"}]},
            headers=basic("300:0.NA/88.456.7", secret),
            timeout=10,
        )
        assert put.status_code in (200, 201), put.text
        # node B's deliverer reports the prefix; the top-level node then routes it to B
        wait_for(
            lambda: (
                "0.na/88.456.7" in requests.get(f"{upstream}/upstream/v1/state", timeout=5).json()["prefixes"]
            )
        )
        site = requests.get(f"{upstream}/api/handles/0.NA/88.456.7", timeout=5).json()["values"][0]
        assert site["data"]["value"]["servers"][0]["interfaces"][0]["port"] == int(b.url.rsplit(":", 1)[1])

        answer = requests.get(f"{a.url}/api/handles/88.456.7/P-1", timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["values"][0]["data"]["value"] == "https://example.com/p1"
        filtered = requests.get(f"{a.url}/api/handles/88.456.7/P-1?type=EMAIL", timeout=10).json()
        assert filtered["responseCode"] == 200  # values not found, as node B said

        missing = requests.get(f"{a.url}/api/handles/88.456.7/NOPE", timeout=10)
        assert missing.status_code == 404 and missing.json()["responseCode"] == 100
        unknown = requests.get(f"{a.url}/api/handles/88.999/X", timeout=10)
        assert unknown.status_code == 404
        assert "top-level node has no site for prefix 88.999" in unknown.json()["message"]

        metrics = requests.get(f"{b.url}/metrics", timeout=10).text
        assert 'resolver_upstream_outbox{state="pending"} 0.0' in metrics
        status = subprocess.run(
            [sys.executable, "-m", "resolver", "upstream", "status", "--dsn", second_database],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "pending 0" in status.stdout and "delivered 1" in status.stdout, status.stdout + status.stderr

        b.stop()
        # a handle that A never saw: the hop to B fails, and the error says which hop
        down = requests.get(f"{a.url}/api/handles/88.456.7/P-2", timeout=30)
        assert down.status_code in (502, 504), down.text
        assert "node for prefix 88.456.7" in down.json()["message"]
        # what A resolved before stays answerable for its TTL
        assert requests.get(f"{a.url}/api/handles/88.456.7/P-1", timeout=10).status_code == 200
    finally:
        for node in nodes:
            node.stop()
        sim.terminate()
        sim.wait(10)
