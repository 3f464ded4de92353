"""The named SQL statements of `queries.sql`, loaded once."""

from __future__ import annotations

import re
from pathlib import Path


def _load(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for block in re.split(r"^-- name: ", path.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]:
        name, _, body = block.partition("\n")
        queries[name.strip()] = body.strip().rstrip(";")
    return queries


Q = _load(Path(__file__).with_name("queries.sql"))
