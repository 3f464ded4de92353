"""Fixtures that run the real `resolver serve` in a subprocess (the helpers are in tests/nodes.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nodes import Node, start_node


@pytest.fixture
def node(fresh_database: str, tmp_path: Path) -> Iterator[Node]:
    """`resolver serve` with two workers on a fresh database."""
    running = start_node(tmp_path, "--workers", "2", "--dsn", fresh_database)
    try:
        yield running
    finally:
        code = running.stop()
        assert code == 0, running.log.read_text()
