"""The templates that handle values name (index 1001): looked up by (prefix, version), the
prefix's own version first, else the shared one of that version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import orjson

from resolver.core.templates import SHARED, Template, parse_template
from resolver.store.rows import TemplateRow


class TemplateSource(Protocol):
    """Where stored templates are read: a write transaction (`Tx`) or the store (`HandleStore`)."""

    async def templates(self, prefixes: list[str], versions: list[str]) -> list[TemplateRow]: ...


async def load_templates(
    source: TemplateSource, wanted: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Template]:
    """Templates by (prefix, version): the prefix's own, or a shared one of that version; pairs
    with neither are absent from the result."""
    if not wanted:
        return {}
    prefixes = sorted({p for p, _ in wanted} | {SHARED})
    versions = sorted({v for _, v in wanted})
    found = {
        (row.prefix, row.version): parse_template(
            {"version": row.version, "industryCodes": row.industry_codes, "items": orjson.loads(row.items)},
            row.prefix,
        )
        for row in await source.templates(prefixes, versions)
    }
    resolved: dict[tuple[str, str], Template] = {}
    for prefix, version in wanted:
        template = found.get((prefix, version)) or found.get((SHARED, version))
        if template is not None:
            resolved[(prefix, version)] = template
    return resolved
