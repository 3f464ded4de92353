"""What every benchmark script needs: a scratch Postgres, a free port on 127.0.0.1, the node in a
subprocess, a stop.

The node always listens on 127.0.0.1 here: benchmarks never target another address.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-admin-secret"


@contextmanager
def embedded_database(prefix: str) -> Iterator[tuple[Path, str]]:
    """(a scratch directory, the DSN of an embedded Postgres in it); both gone afterwards."""
    from resolver.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # the embedded server may run as another user
        pg = EmbeddedPostgres(workdir / "pgdata")
        dsn = pg.start()
        try:
            yield workdir, dsn
        finally:
            pg.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 120.0) -> None:
    """Wait until `url` answers 200 (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def start_node(
    workdir: Path, *options: str, workers: int = 2, checkout: Path = ROOT
) -> tuple[subprocess.Popen[bytes], str]:
    """`resolver serve` on a free port of 127.0.0.1 (options give --dsn or --data-dir); its URL once
    ready. `checkout`: the source tree to run (another one for an A/B against an older commit)."""
    port = free_port()
    if "--native-port" not in options:  # the default 2641 may be another node's: none unless asked
        options = (*options, "--native-port", "0")
    with open(workdir / f"node-{port}.log", "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "resolver",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--admin-secret",
                SECRET,
                *options,
            ],
            cwd=checkout,
            env={**os.environ, "PYTHONPATH": str(checkout)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz")
    return process, url


def run_import(source: Path, dsn: str, *options: str) -> None:
    """`resolver import` of a file into the database `dsn`."""
    subprocess.run(
        [sys.executable, "-m", "resolver", "import", str(source), "--dsn", dsn, *options],
        cwd=ROOT,
        check=True,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then wait (bounded), then kill."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
