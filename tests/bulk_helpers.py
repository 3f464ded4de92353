"""Reading the rejected-rows report of an import as a person's spreadsheet would."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

REASON = re.compile(r"第 (\d+) 行：(.*)", re.S)


def read_report(path: Path) -> list[dict[str, str]]:
    """Each rejected row: its cells by column name, with `line` and `reason` taken from the
    `拒绝原因` column (written "第 N 行" and the reason); a JSON Lines report's objects likewise."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line]
    else:
        rows = [dict(row) for row in csv.DictReader(io.StringIO(text, newline=""))]
    for row in rows:
        match = REASON.fullmatch(row.pop("拒绝原因", None) or row.pop("reason", ""))
        assert match, row
        row["line"], row["reason"] = match.group(1), match.group(2)
    return rows
