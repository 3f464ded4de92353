"""The real `resolver serve` in a subprocess, for end-to-end and security tests: start it, find its
workers, admit an enterprise over HTTP. The `node` fixture is in tests/e2e/conftest.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.helpers import ADMIN_SECRET, NODE_PREFIX

# The key directory of every node process of the session that names none (the seal of its secret
# keys): one for all, since nodes of a session share databases.
SESSION_KEYS = Path(tempfile.mkdtemp(prefix="resolver-test-keys-"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for a clean exit; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def worker_pid(url: str, timeout: float = 5.0, node_prefix: str = NODE_PREFIX) -> int:
    """The pid of the worker that answers a new connection (`/status`, for the node administrator
    300:0.NA/<node prefix>)."""
    from tests.helpers import basic

    answer = requests.get(f"{url}/status", headers=basic(f"300:0.NA/{node_prefix}"), timeout=timeout)
    answer.raise_for_status()
    return int(answer.json()["pid"])


def start_node(
    tmp: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
    scheme: str = "http",
) -> Node:
    port = free_port()
    log = tmp / f"node-{port}.log"
    command = [
        sys.executable,
        "-m",
        "resolver",
        "serve",
        "--port",
        str(port),
        "--node-prefix",
        NODE_PREFIX,
        "--admin-secret",
        ADMIN_SECRET,
        *(() if "--native-port" in args else ("--native-port", "0")),
        *(() if "--key-dir" in args else ("--key-dir", str(SESSION_KEYS))),
        *args,
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    node = Node(process, f"{scheme}://127.0.0.1:{port}", log)
    workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
    node_prefix = args[args.index("--node-prefix") + 1] if "--node-prefix" in args else NODE_PREFIX
    try:
        if _wait_ready(node, workers, node_prefix, ready_timeout):
            return node
    except BaseException:  # nothing outlives a failed start, whatever stopped it
        try:
            node.stop(15)
        except subprocess.TimeoutExpired:
            node.process.kill()
        raise
    node.stop()
    raise RuntimeError(f"resolver did not become ready:\n{log.read_text()}")


def _wait_ready(node: Node, workers: int, node_prefix: str, ready_timeout: float) -> bool:
    """True once every worker has answered at least once (a new connection each time)."""
    deadline = time.monotonic() + ready_timeout
    seen: set[int] = set()
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise RuntimeError(f"resolver exited with {node.process.returncode}:\n{node.log.read_text()}")
        try:
            if requests.get(f"{node.url}/readyz", timeout=1).status_code == 200:
                seen.add(worker_pid(node.url, timeout=1, node_prefix=node_prefix))
                if len(seen) >= workers:
                    return True
        except requests.RequestException:
            pass
        time.sleep(0.05)
    return False


def admit_over_http(
    url: str, prefix: str, seed: int, username: str, password: str, node_prefix: str = NODE_PREFIX
) -> str:
    """Through the operator API: an enterprise with `prefix` enabled and one user; returns the
    secret of the prefix administrator `300:0.NA/<prefix>`."""
    from tests.enterprise_helpers import credit_code
    from tests.helpers import basic

    admin = basic(f"300:0.NA/{node_prefix}")
    created = requests.post(
        f"{url}/admin/enterprises",
        json={"name": f"企业{seed}", "creditCode": credit_code(seed)},
        headers=admin,
        timeout=30,
    ).json()
    eid = created["data"]["id"]
    requests.post(
        f"{url}/admin/enterprises/{eid}/prefixes", json={"prefix": prefix}, headers=admin, timeout=30
    )
    requests.put(f"{url}/admin/prefixes/{prefix}/state", json={"state": 5}, headers=admin, timeout=30)
    enabled = requests.put(
        f"{url}/admin/prefixes/{prefix}/state", json={"state": 1}, headers=admin, timeout=30
    ).json()
    user = requests.post(
        f"{url}/admin/enterprises/{eid}/users",
        json={"username": username, "password": password},
        headers=admin,
        timeout=30,
    ).json()
    assert user["status"] == 1, user
    return str(enabled["data"]["admin"]["secret"])
