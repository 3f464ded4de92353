"""One port, one node (issue 15): a second `resolver serve` on a port another process holds exits at
once with a message and exit code 3 (resolver/ports.py), instead of sharing the port through
SO_REUSEPORT and answering in turn with the first node.

The reference server binds its listeners exclusively and stops on failure
(net/handle/server/HdlTcpInterface.java and HdlUdpInterface.java, `serveRequests`: "Error setting up
server socket").
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from resolver.ports import EXIT_PORT_IN_USE
from tests.helpers import ADMIN_SECRET, NODE_PREFIX
from tests.nodes import Node, free_port, start_node, worker_pid

pytestmark = pytest.mark.e2e

REFUSED_WITHIN = 20.0  # seconds; a refusal comes before the database is even looked at


def _free_udp_and_tcp() -> int:
    """A port free on TCP and on UDP (the native port takes both)."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def _second_node(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "resolver",
        "serve",
        "--node-prefix",
        NODE_PREFIX,
        "--admin-secret",
        ADMIN_SECRET,
        "--workers",
        "1",
        *args,
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=REFUSED_WITHIN,
        env={**os.environ, **(env or {})},
    )


def _assert_refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == EXIT_PORT_IN_USE, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


@pytest.fixture
def first(fresh_database: str, tmp_path: Path) -> Iterator[tuple[Node, int]]:
    """Node 1: two workers, the native protocol on; and its native port."""
    native_port = _free_udp_and_tcp()
    running = start_node(
        tmp_path, "--workers", "2", "--dsn", fresh_database, "--native-port", str(native_port)
    )
    try:
        yield running, native_port
    finally:
        assert running.stop() == 0, running.log.read_text()


def test_a_second_node_on_a_running_nodes_ports_is_refused(
    first: tuple[Node, int], fresh_database: str
) -> None:
    """HdlTcpInterface/HdlUdpInterface.serveRequests: a busy port stops the start. Node 2 on node 1's
    HTTP port, then on its native port, exits 3 naming node 1 (its parent's pid); node 1 goes on
    answering on both."""
    node, native_port = first
    http_port = int(node.url.rsplit(":", 1)[1])
    before = {worker_pid(node.url) for _ in range(8)}
    parent = node.process.pid

    on_http = _second_node(
        "--dsn", fresh_database, "--port", str(http_port), "--native-port", str(_free_udp_and_tcp())
    )
    _assert_refused(on_http, f"HTTP port {http_port} is already in use by another resolver (pid {parent})")
    on_native = _second_node(
        "--dsn", fresh_database, "--port", str(free_port()), "--native-port", str(native_port)
    )
    _assert_refused(
        on_native, f"native TCP port {native_port} is already in use by another resolver (pid {parent})"
    )

    assert requests.get(f"{node.url}/readyz", timeout=5).status_code == 200
    assert {worker_pid(node.url) for _ in range(8)} <= before
    with socket.create_connection(("127.0.0.1", native_port), timeout=5):
        pass


def test_of_two_nodes_started_at_once_on_one_port_one_runs(fresh_database: str, tmp_path: Path) -> None:
    """Started in the same instant, both could pass a bind check before either worker binds; the
    lock on the port number lets exactly one through, the other exits 3."""
    port, native_port = free_port(), _free_udp_and_tcp()
    command = [sys.executable, "-m", "resolver", "serve", "--node-prefix", NODE_PREFIX, "--admin-secret"]
    command += [ADMIN_SECRET, "--workers", "1", "--dsn", fresh_database, "--port", str(port)]
    command += ["--native-port", str(native_port)]
    logs = [tmp_path / f"node-{i}.log" for i in (1, 2)]
    processes = []
    for log in logs:
        with open(log, "wb") as out:
            processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + REFUSED_WITHIN
        while all(p.poll() is None for p in processes) and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = [i for i, p in enumerate(processes) if p.poll() is not None]
        assert len(refused) == 1, [log.read_text() for log in logs]
        assert processes[refused[0]].returncode == EXIT_PORT_IN_USE, logs[refused[0]].read_text()
        assert "is already in use by another resolver" in logs[refused[0]].read_text()
        running = processes[1 - refused[0]]
        while time.monotonic() < deadline + 40:
            assert running.poll() is None, logs[1 - refused[0]].read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        else:
            raise AssertionError(logs[1 - refused[0]].read_text())
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)


def _holder(kind: socket.SocketKind, *options: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    for option in options:
        sock.setsockopt(socket.SOL_SOCKET, option, 1)
    sock.bind(("127.0.0.1", 0 if kind == socket.SOCK_STREAM else _free_udp_and_tcp()))
    if kind == socket.SOCK_STREAM:
        sock.listen()
    return sock


@pytest.mark.parametrize("options", [(), (socket.SO_REUSEPORT,)], ids=["plain", "reuseport"])
def test_another_program_on_the_http_port_refuses_the_node(options: tuple[int, ...], tmp_path: Path) -> None:
    """HdlTcpInterface.serveRequests: a listening socket of another program on the HTTP port, with
    or without SO_REUSEPORT, stops the node before its embedded Postgres starts."""
    data_dir = tmp_path / "pgdata"
    with _holder(socket.SOCK_STREAM, *options) as held:
        port = held.getsockname()[1]
        result = _second_node(
            "--port", str(port), "--native-port", "0", "--data-dir", str(data_dir), env={"RESOLVER_DSN": ""}
        )
    _assert_refused(
        result, f"HTTP port 127.0.0.1:{port} is already in use by another process; stop it or choose --port"
    )
    assert not data_dir.exists()  # the embedded Postgres was never started


@pytest.mark.parametrize(
    ("kind", "name"),
    [(socket.SOCK_DGRAM, "native UDP"), (socket.SOCK_STREAM, "native TCP")],
    ids=["udp", "tcp"],
)
def test_another_program_on_one_native_transport_refuses_the_node(
    kind: socket.SocketKind, name: str, tmp_path: Path
) -> None:
    """HdlUdpInterface/HdlTcpInterface.serveRequests: the native port is refused when only its UDP
    side, or only its TCP side, is taken."""
    data_dir = tmp_path / "pgdata"
    with _holder(kind, socket.SO_REUSEPORT) as held:
        port = held.getsockname()[1]
        result = _second_node(
            "--port",
            str(free_port()),
            "--native-port",
            str(port),
            "--data-dir",
            str(data_dir),
            env={"RESOLVER_DSN": ""},
        )
    _assert_refused(
        result,
        f"{name} port 127.0.0.1:{port} is already in use by another process; stop it or choose --native-port",
    )
    assert not data_dir.exists()


def test_the_native_port_may_not_be_the_http_port() -> None:
    """Both on one port, the node's HTTP and native TCP listeners would share it (SO_REUSEPORT)."""
    port = free_port()
    result = _second_node("--dsn", "postgresql://unused/", "--port", str(port), "--native-port", str(port))
    assert result.returncode == 2, result.stderr
    assert "--native-port must differ from --port" in result.stderr
