"""The real process tree: two workers kept coherent, crash restarts, clean SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import admin_json, basic
from tests.nodes import start_node, worker_pid

pytestmark = pytest.mark.e2e


_OPEN: list[http.client.HTTPConnection] = []


@pytest.fixture(autouse=True)
def _close_connections():
    yield
    while _OPEN:
        _OPEN.pop().close()


class Conn:
    """One keep-alive connection, which SO_REUSEPORT pins to one worker."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.http = http.client.HTTPConnection(host, int(port), timeout=10)
        _OPEN.append(self.http)
        self.pid = self.request("GET", "/status", headers=basic())[1]["pid"]

    def request(self, method, path, body=None, headers=None):
        payload = json.dumps(body).encode() if body is not None else None
        self.http.request(method, path, body=payload, headers=headers or {})
        response = self.http.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if data else None)


def one_connection_per_worker(url: str, workers: int = 2, within: float = 10.0) -> list[Conn]:
    found: dict[int, Conn] = {}
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        conn = Conn(url)
        if conn.pid in found:
            conn.http.close()
        else:
            found[conn.pid] = conn
        if len(found) == workers:
            return list(found.values())
    raise AssertionError(f"reached only workers {sorted(found)}")


def visible_within(conn: Conn, path: str, status: int, within: float = 1.0, url: str | None = None) -> float:
    started = time.monotonic()
    while True:
        got, body = conn.request("GET", path)
        if got == status and (url is None or body["values"][0]["data"]["value"] == url):
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"worker {conn.pid} still answers {got}"
        time.sleep(0.01)


def test_a_write_through_one_worker_reaches_the_other_within_a_second(node):
    a, b = one_connection_per_worker(node.url)
    path = "/api/handles/88.123/XW-1"
    assert a.request("GET", path)[0] == 404
    assert b.request("GET", path)[0] == 404  # both workers now hold a negative entry
    value = [{"index": 1, "type": "URL", "data": "https://v1"}]
    assert a.request("PUT", path, value, admin_json())[0] == 200
    visible_within(b, path, 200, url="https://v1")
    assert (
        b.request(
            "PUT",
            path + "?index=1",
            [{"index": 1, "type": "URL", "data": "https://v2"}],
            admin_json(),
        )[0]
        == 200
    )
    visible_within(a, path, 200, url="https://v2")
    assert a.request("DELETE", path, None, basic())[0] == 200
    visible_within(b, path, 404)


def test_a_crashed_worker_is_replaced(node):
    (victim, survivor) = one_connection_per_worker(node.url)
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    pids: set[int] = set()
    while time.monotonic() < deadline:
        try:
            pids = {c.pid for c in one_connection_per_worker(node.url)}
        except (AssertionError, OSError):
            time.sleep(0.2)
            continue
        if victim.pid not in pids and len(pids) == 2:
            break
    assert survivor.pid in pids and victim.pid not in pids and len(pids) == 2


def test_sigterm_stops_cleanly_and_embedded_data_survives_a_restart(tmp_path: Path):
    data_dir = tmp_path / "pgdata"
    first = start_node(tmp_path, "--workers", "1", "--data-dir", str(data_dir), env={"RESOLVER_DSN": ""})
    conn = Conn(first.url)
    value = [{"index": 1, "type": "URL", "data": "https://kept"}]
    assert conn.request("PUT", "/api/handles/88.123/KEEP-1", value, admin_json())[0] == 200
    conn.http.close()
    assert first.stop() == 0
    assert "all workers stopped" in first.log.read_text()

    second = start_node(tmp_path, "--workers", "1", "--data-dir", str(data_dir), env={"RESOLVER_DSN": ""})
    try:
        status, body = Conn(second.url).request("GET", "/api/handles/88.123/KEEP-1")
        assert status == 200 and body["values"][0]["data"]["value"] == "https://kept"
    finally:
        assert second.stop() == 0


def test_sigterm_lets_an_in_flight_request_finish(node, fresh_database):
    """A write that is waiting on the database when SIGTERM arrives completes and is answered.

    The test holds the handle's row lock from its own connection, so the node's write is in flight
    until the test lets go, a second after SIGTERM.
    """
    import asyncio
    import threading

    import asyncpg
    import requests

    path = "/api/handles/88.123/DRAIN-1"
    assert (
        requests.put(
            node.url + path,
            json=[{"index": 1, "type": "URL", "data": "https://v1"}],
            headers=admin_json(),
            timeout=10,
        ).status_code
        == 200
    )
    locked, release = threading.Event(), threading.Event()

    def hold_row_lock() -> None:
        async def main() -> None:
            conn = await asyncpg.connect(fresh_database)
            try:
                async with conn.transaction():
                    await conn.execute("select 1 from handles where key = $1 for update", "88.123/drain-1")
                    locked.set()
                    await asyncio.to_thread(release.wait, 20)
            finally:
                await conn.close()

        asyncio.run(main())

    answers: list[requests.Response] = []
    holder = threading.Thread(target=hold_row_lock)
    holder.start()
    assert locked.wait(10)
    writer = threading.Thread(
        target=lambda: answers.append(
            requests.put(
                node.url + path,
                json=[{"index": 1, "type": "URL", "data": "https://v2"}],
                headers=admin_json(),
                timeout=30,
            )
        )
    )
    writer.start()
    time.sleep(0.5)  # the write now waits for the row lock
    node.process.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    release.set()
    holder.join(10)
    writer.join(30)
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    assert node.process.wait(30) == 0

    async def stored() -> str:
        conn = await asyncpg.connect(fresh_database)
        try:
            return str(await conn.fetchval("select vals::text from handles where key = $1", "88.123/drain-1"))
        finally:
            await conn.close()

    assert "https://v2" in asyncio.run(stored())


def test_metrics_cover_every_worker(node):
    import requests

    for i in range(40):  # new connections: both workers get traffic
        requests.get(f"{node.url}/api/handles/88.123/METRIC-{i}", timeout=10)
        requests.get(f"{node.url}/api/handles/0.NA/88.123", timeout=10)
    time.sleep(1.5)  # workers flush their tallies once a second
    text = requests.get(f"{node.url}/metrics", timeout=10).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    assert samples['resolver_resolutions_total{outcome="not_found"}'] == 40
    hits_and_misses = samples.get('resolver_resolutions_total{outcome="hit"}', 0) + samples.get(
        'resolver_resolutions_total{outcome="miss"}', 0
    )
    assert hits_and_misses == 40
    assert (
        samples['resolver_http_requests_total{method="GET",route="/api/handles/{handle}",status="4xx"}'] == 40
    )
    assert samples['resolver_http_request_duration_seconds_count{route="/api/handles/{handle}"}'] == 80
    assert samples["resolver_change_feed_up"] == 1
    assert all("METRIC-" not in line for line in text.splitlines())  # no raw handles in labels


def test_ready_only_once_every_worker_accepts_connections(fresh_database, tmp_path: Path):
    # A client that connects the moment /readyz first says 200 must find every worker listening:
    # otherwise all its keep-alive connections land on the first worker that started.
    import subprocess
    import sys

    import requests

    from tests.helpers import ADMIN_SECRET
    from tests.nodes import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "node.log", "wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "resolver", "serve", "--port", str(port), "--workers", "2"),
                *("--dsn", fresh_database, "--admin-secret", ADMIN_SECRET, "--native-port", "0"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        answers = []
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"{url}/readyz", timeout=1)
            except requests.RequestException:
                time.sleep(0.01)
                continue
            answers.append(answer.json()["status"])
            if answer.status_code == 200:
                break
            assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
            time.sleep(0.01)
        assert answers[-1] == "ready", answers
        pids = {worker_pid(url) for _ in range(24)}
        assert len(pids) == 2, f"24 new connections reached only {pids}"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
