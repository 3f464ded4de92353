"""The portal's label page (issue 18): choose identifiers of the enterprise (a range of suffixes
under one of its prefixes, optionally one production batch, or a list of identifiers) and a
grid, get an A4 PDF of QR labels (resolver/services/labels.py) for up to 10,000 identifiers.

The sheet is built in a thread, one at a time per worker: the event loop keeps serving while it
is drawn, and a second request meanwhile is told to retry (503 with Retry-After)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from resolver.core.enterprises import READABLE
from resolver.core.errors import RC, HandleError
from resolver.core.handles import fold, parse_handle
from resolver.core.permissions import Identity
from resolver.http.forwarded import FORWARDED_BASE
from resolver.http.keys import REGISTRY, STORE
from resolver.portal import pages
from resolver.services.labels import GRIDS, MAX_LABELS, Label, build_pdf
from resolver.store import enterprises as db
from resolver.store import uploads

LABELS_BUSY: web.AppKey[asyncio.Lock] = web.AppKey("labels_busy", asyncio.Lock)
MAX_FORM = 1024 * 1024  # a list of 10,000 identifiers


def routes() -> list[tuple[str, dict[str, Any]]]:
    return [("/portal/labels", {"GET": labels_page, "POST": labels})]


async def _prefixes(request: web.Request, identity: Identity) -> list[str]:
    assert identity.enterprise_id is not None
    rows = await db.prefixes_of(request.app[STORE], identity.enterprise_id)
    return [p.display for p in rows if p.state in READABLE]


def _bad(message: str, zh: str) -> HandleError:
    return HandleError(RC.INVALID_VALUE, message, zh=zh)


async def labels_page(
    request: web.Request, error: str | None = None, status: int = 200
) -> web.StreamResponse:
    session = await pages._signed_in(request)
    if session is None:
        return pages._to_login(request)
    identity, token = session
    query = request.query
    context = {
        "title": pages._t(request, "打印标签", "Print labels"),
        "user": identity.text,
        "csrf": pages._session_csrf(token),
        "prefixes": await _prefixes(request, identity),
        "grids": list(GRIDS),
        "form": {k: query.get(k, "") for k in ("prefix", "first", "last", "batch", "grid")},
        "most": MAX_LABELS,
        "error": error,
    }
    return pages._page(request, "labels.html", context, status)


def _name_of(values: list[dict[str, Any]]) -> str:
    for value in values:
        if fold(str(value.get("type", ""))) == "productname":
            data = value.get("data") or {}
            if isinstance(data.get("value"), str):
                return str(data["value"])
    return ""


async def _by_range(request: web.Request, prefix: str, form: dict[str, str]) -> list[tuple[str, str]]:
    first, last = form.get("first", "").strip(), form.get("last", "").strip()
    if not first:
        raise _bad("enter the first suffix of the range", "请填写起始后缀")
    low = fold(f"{prefix}/{first}")
    high = fold(f"{prefix}/{last}") if last else fold(f"{prefix}/") + "\U0010ffff"
    batch = form.get("batch", "").strip()[:200]
    rows = await uploads.labels_range(request.app[STORE], fold(prefix), low, high, batch, MAX_LABELS + 1)
    return [(handle, _name_of(orjson.loads(values))) for handle, values in rows]


async def _by_list(request: web.Request, identity: Identity, text: str) -> list[tuple[str, str]]:
    registry = request.app[REGISTRY]
    sent = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    if len(sent) > MAX_LABELS:
        raise _bad(f"at most {MAX_LABELS} identifiers", f"一次最多 {MAX_LABELS} 个标识")
    names = []
    for handle in sent:
        try:
            names.append(parse_handle(handle, registry.limits))
        except HandleError as exc:
            raise _bad(
                f"identifier {handle} is not valid: {exc.message}",
                f"标识 {handle} 无效：{exc.zh or exc.message}",
            ) from None
    owners = await registry.owners(names)
    for name in names:
        owner = owners[name.key]
        if owner is None or owner.enterprise_id != identity.enterprise_id or owner.state not in READABLE:
            raise _bad(
                f"{name.text} is not an identifier of this enterprise", f"{name.text} 不是本企业的标识"
            )
    records = await request.app[STORE].fetch_many([n.key for n in names])
    missing = [n.text for n in names if n.key not in records]
    if missing:
        raise _bad(f"no such identifier: {missing[0]}", f"标识不存在：{missing[0]}")
    return [(records[n.key].handle, _name_of(list(records[n.key].values))) for n in names]


async def labels(request: web.Request) -> web.StreamResponse:
    posted = await pages.signed_form(request, MAX_FORM)
    if isinstance(posted, web.Response):
        return posted
    identity, _token, form = posted
    grid = GRIDS.get(form.get("grid", ""))
    try:
        if grid is None:
            raise _bad("choose a label grid", "请选择标签规格")
        if form.get("handles", "").strip():
            chosen = await _by_list(request, identity, form["handles"])
        else:
            prefix = form.get("prefix", "")
            if prefix not in await _prefixes(request, identity):
                raise _bad(f"{prefix} is not a prefix of this enterprise", f"{prefix} 不是本企业的前缀")
            chosen = await _by_range(request, prefix, form)
        if not chosen:
            raise _bad("no identifier was chosen", "没有选中任何标识")
        if len(chosen) > MAX_LABELS:
            raise _bad(
                f"more than {MAX_LABELS} identifiers; narrow the range",
                f"超过 {MAX_LABELS} 个标识，请缩小范围",
            )
    except HandleError as exc:
        return await labels_page(
            request, exc.zh if pages._lang(request) == "zh" and exc.zh else exc.message, 400
        )
    base = str(request.get(FORWARDED_BASE) or f"{request.scheme}://{request.host}").rstrip("/")
    items = [Label(handle, name, f"{base}/{quote(handle, safe='/')}") for handle, name in chosen]
    busy = request.app[LABELS_BUSY]
    if busy.locked():
        raise HandleError(
            RC.SERVER_TOO_BUSY,
            "another label sheet is being drawn",
            zh="正在生成其他标签，请稍后再试",
            retry_after=5,
        )
    async with busy:
        pdf = await asyncio.to_thread(build_pdf, items, grid, "labels")
    return web.Response(
        body=pdf,
        headers={
            "Content-Type": "application/pdf",
            "Content-Disposition": f'attachment; filename="labels-{len(items)}.pdf"',
        },
    )
