"""Readiness files: which of the node's worker slots accept connections.

Every worker touches `listening-<slot>` in the directory the supervisor shares for metrics
(`PROMETHEUS_MULTIPROC_DIR`, see resolver/metrics.py) once it listens; `/health` counts them.
"""

from __future__ import annotations

import os
from pathlib import Path

from resolver.metrics import MULTIPROC_ENV


def mark_listening(slot: int) -> None:
    """Tell the other workers (through the shared directory) that worker `slot` accepts connections."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        (Path(directory) / f"listening-{slot}").touch()


def workers_listening(workers: int) -> int:
    """How many of the node's worker slots have accepted connections since it started (all of them
    when this process was not started by the supervisor)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return workers
    return sum(1 for slot in range(workers) if (Path(directory) / f"listening-{slot}").exists())
