"""Identifiers loaded with SQL straight into a test database, for reverse-lookup tests."""

from __future__ import annotations

import asyncpg


async def seed(dsn: str, prefix: str, count: int) -> list[tuple[str, str]]:
    """`count` identifiers under `prefix` with URL https://example.com/p/<n>; their (term, handle)
    in the order a search answers: term bytes, then key."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            insert into handles (key, handle, prefix, vals)
            select $1 || '/item-' || i, $1 || '/ITEM-' || i, $1,
                   json_build_array(json_build_object('index', 1, 'type', 'URL', 'data',
                       json_build_object('format', 'string', 'value', 'https://example.com/p/' || i),
                       'ttl', 86400, 'timestamp', '2026-12-01T00:00:00Z', 'permissions', '1110'))
            from generate_series(1, $2::int) as i;
            """,
            prefix,
            count,
        )
        await conn.execute(
            """
            insert into search_terms (term, key, prefix)
            select 'url=https://example.com/p/' || i, $1 || '/item-' || i, $1 from generate_series(1, $2::int) as i
            """,
            prefix,
            count,
        )
        await conn.execute("analyze handles")
        await conn.execute("analyze search_terms")
    finally:
        await conn.close()
    return [(f"url=https://example.com/p/{i}", f"{prefix}/ITEM-{i}") for i in range(1, count + 1)]


def answer_order(rows: list[tuple[str, str]]) -> list[str]:
    return [handle for _, handle in sorted(rows, key=lambda r: (r[0], r[1].lower()))]
