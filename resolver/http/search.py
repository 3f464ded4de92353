"""Reverse lookup, as the Handle reverse-lookup servlet answers it: `GET /hrls/handles?URL=...`.

Keys are the value types the operator allows (`--search-types`), matched case-insensitively; values
match exactly, or with `*` as a wildcard. Several keys must all match. The answer is a JSON array
of handles. Enterprises see only their own handles; the node administrator sees all.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from resolver.core.errors import RC, HandleError
from resolver.core.handles import fold
from resolver.core.values import parse_int
from resolver.http.envelope import caller
from resolver.http.errors import mapped
from resolver.http.keys import CONFIG, RATE_LIMITER, REGISTRY, STORE

MAX_LIMIT = 10_000


def like_pattern(value_type: str, value: str) -> str:
    """The LIKE pattern of a search term: SQL wildcards escaped, `*` becomes `%`."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
    return f"{fold(value_type)}={escaped}"


async def search(request: web.Request) -> web.Response:
    """GET /hrls/handles?URL=...&limit=&page=: the handles whose values match."""
    request.app[RATE_LIMITER].check(request)
    identity = await caller(request)
    config = request.app[CONFIG]
    registry = request.app[REGISTRY]
    allowed = set(config.search_types)
    terms: list[str] = []
    for key, value in request.query.items():
        if key in ("limit", "page", "prefix"):
            continue
        if fold(key) not in allowed:
            raise HandleError(
                RC.PROTOCOL_ERROR, f"cannot search by {key}; searchable: {', '.join(sorted(allowed))}"
            )
        terms.append(like_pattern(key, value))
    if not terms:
        raise HandleError(RC.PROTOCOL_ERROR, f"give at least one search key: {', '.join(sorted(allowed))}")
    try:
        limit = parse_int(request.query.get("limit", "1000"), "limit", 1, MAX_LIMIT)
        page = parse_int(request.query.get("page", "0"), "page", 0, 10_000_000)
    except HandleError as exc:
        raise HandleError(RC.PROTOCOL_ERROR, exc.message) from None
    if registry.is_node_admin(identity):
        prefixes: list[str] = []
    elif identity.enterprise_id is not None:
        rows = await request.app[STORE].fetch_named("enterprise_prefixes", identity.enterprise_id)
        prefixes = [row[0] for row in rows] or ["!none"]
    else:
        # A prefix administrator (300:0.NA/<prefix>) sees the handles of that prefix.
        head, _, tail = identity.key.partition("/")
        prefixes = [tail] if head == "0.na" else ["!none"]
    wanted = request.query.get("prefix")
    if wanted:
        prefixes = [p for p in prefixes if p == fold(wanted)] if prefixes else [fold(wanted)]
        prefixes = prefixes or ["!none"]
    rows = await request.app[STORE].fetch_named("search", terms[0], prefixes, terms[1:], page * limit, limit)
    return web.Response(body=orjson.dumps([row[0] for row in rows]), content_type="application/json")


def add_routes(app: web.Application) -> None:
    for path in ("/hrls/handles", "/hrls/handles/"):
        app.router.add_get(path, mapped(search), allow_head=False)
