"""The named SQL statements of `sql/*.sql`, one file per aggregate, loaded once.

Statement text is constant per call site so asyncpg's statement cache works; a name is defined once
across all the files.
"""

from __future__ import annotations

import re
from pathlib import Path


def _load(folder: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for path in sorted(folder.glob("*.sql")):
        for block in re.split(r"^-- name: ", path.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]:
            name, _, body = block.partition("\n")
            name = name.strip()
            if name in queries:
                raise RuntimeError(f"statement {name!r} is defined twice ({path.name})")
            queries[name] = body.strip().rstrip(";")
    return queries


Q = _load(Path(__file__).with_name("sql"))


def escape_like(text: str) -> str:
    """`text` for a LIKE pattern with `escape '\\'`: its wildcards and escapes taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
