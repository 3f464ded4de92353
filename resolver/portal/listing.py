"""The portal's first page (issue 18): the enterprise's prefixes with their states and review
notes, and the identifiers of one, paged, or found by how the handle starts, the day it was
registered and a template item's value. Listing goes through `Registry.list_handles`, whose rule
lets an enterprise user list its own enterprise's prefixes (enabled or disabled) and nothing else;
the search is held to the same prefixes."""

from __future__ import annotations

from datetime import date

from aiohttp import web

from resolver.core.enterprises import READABLE, STATE_NAMES, PrefixState
from resolver.core.errors import RC, HandleError
from resolver.core.handles import fold
from resolver.http.keys import REGISTRY, STORE
from resolver.portal import pages
from resolver.portal.records import _templates
from resolver.store import enterprises as db
from resolver.store import uploads as finding

PAGE_SIZE = 50
FILTERS = ("starts", "from", "to", "item", "value")


def _day(raw: str, what: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise HandleError(
            RC.INVALID_VALUE, f"{what} is a date YYYY-MM-DD", zh=f"{what}应为日期 YYYY-MM-DD"
        ) from None


async def identifiers(request: web.Request) -> web.StreamResponse:
    session = await pages._signed_in(request)
    if session is None:
        return pages._to_login(request)
    identity, token = session
    assert identity.enterprise_id is not None
    rows = await db.prefixes_of(request.app[STORE], identity.enterprise_id)
    prefixes = [p.display for p in rows]
    states = {p.display: STATE_NAMES[PrefixState(p.state)] for p in rows}
    notes = {p.display: p.review_note for p in rows if p.review_note}
    query = request.query
    prefix = query.get("prefix", "")
    if prefix not in prefixes:
        prefix = prefixes[0] if prefixes else ""
    raw_page = query.get("page", "0")
    page = int(raw_page) if raw_page.isascii() and raw_page.isdigit() and len(raw_page) < 7 else 0
    filters = {k: query.get(k, "").strip()[:200] for k in FILTERS}
    searching = any(filters.values())
    total, handles, more = 0, list[str](), False
    listable = {p.display for p in rows if p.state in READABLE}
    items = []
    if prefix in listable:  # awaiting review, rejected or being deleted: its state and note only
        items = sorted(
            {(i.id_type, i.name) for t in await _templates(request, prefix) for i in t.items},
            key=lambda pair: pair[1],
        )
        registry = request.app[REGISTRY]
        if searching:
            days = (_day(filters["from"], "起始日期"), _day(filters["to"], "结束日期"))
            item = fold(filters["item"]) if filters["value"] else ""
            found = await finding.find(
                request.app[STORE],
                fold(prefix),
                fold(f"{prefix}/{filters['starts']}") if filters["starts"] else "",
                days,
                (item, filters["value"] if item else ""),
                page * PAGE_SIZE,
                PAGE_SIZE + 1,
            )
            handles, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
        else:
            total, handles = await registry.list_handles(prefix, page, PAGE_SIZE, identity)
            last = max(0, (total - 1) // PAGE_SIZE)
            if page > last:  # past the end: the last page
                page = last
                total, handles = await registry.list_handles(prefix, page, PAGE_SIZE, identity)
            more = (page + 1) * PAGE_SIZE < total
    context = {
        "title": pages._t(request, "我的标识", "My identifiers"),
        "user": identity.text,  # the user name
        "csrf": pages._session_csrf(token),
        "prefixes": prefixes,
        "states": states,
        "notes": notes,
        "prefix": prefix,
        "listable": prefix in listable,
        "handles": handles,
        "total": total,
        "page": page,
        "more": more,
        "searching": searching,
        "filters": filters,
        "items": items,
    }
    return pages._page(request, "identifiers.html", context)
