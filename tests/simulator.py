"""The top-level node simulator (deploy/toplevel_simulator.py), loaded for tests: in-process on a
real socket, or as its own process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import requests

PATH = Path(__file__).resolve().parents[1] / "deploy" / "toplevel_simulator.py"


def module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("toplevel_simulator", PATH)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def start_process(port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """The simulator as a process on 127.0.0.1:`port`, once it answers."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(PATH), "--port", str(port), *args], stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except requests.RequestException:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the simulator did not start:\n{log.read_text()}")
