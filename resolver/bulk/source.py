"""The file an import reads: its format (from its first octets, else its name) and its digest
(an import is resumed only for the very same file)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from resolver.bulk.sheets import sniff
from resolver.bulk.userfiles import open_regular


def file_digest(path: Path) -> str:
    """sha256 of the file: an import is resumed only for the very same file."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def detect_format(path: Path, given: str | None) -> str:
    """The format given, else the one the file's first octets or name say."""
    with open_regular(path) as raw:
        found = sniff(raw.read(8))  # a workbook named .csv is still a workbook; .xls is refused
    if given:
        return given
    if found is not None:
        return found
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"
