"""The console's running pages (issue 18), for operators and the node administrator:

- /console/enterprises: search enterprises by name, credit code or prefix; each with its prefixes,
  their states, a state change (the life cycle's transitions, through Operators.set_prefix_state)
  and the replacement of a prefix's Handle secret (Operators.rotate_credentials, shown once);
- /console/node: how the node stands against the thresholds (services/statistics.standing, the
  figures `resolver stats` prints) as charts, the upstream outbox, this worker's cache, the database;
- /console/audit: the audit trail by handle, enterprise and time (Operators.audit_trail);
- /console/operators (node administrator only): console accounts and their roles.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from resolver.console import pages as console
from resolver.core.enterprises import STATE_NAMES, TRANSITIONS, PrefixState
from resolver.core.errors import RC, HandleError
from resolver.http.keys import CONSOLE_OPERATORS, LOOKUP, OPERATORS, SCHEMA_VERSION, STORE
from resolver.logs import RECENT
from resolver.portal import pages as portal
from resolver.portal.charts import cumulative, daily_bars
from resolver.portal.figures import series
from resolver.services.console_operators import ADMIN, may
from resolver.services.statistics import REGISTRATIONS_PER_YEAR, RESOLUTIONS_PER_DAY, standing, today
from resolver.store import console as console_store
from resolver.store import enterprises as db
from resolver.store import statistics as counts

FOUND = 50
AUDIT_PAGE = 50


def routes() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("/console/enterprises", {"GET": enterprises_page}),
        ("/console/prefix", {"POST": prefix_action}),
        ("/console/node", {"GET": node_page}),
        ("/console/audit", {"GET": audit_page}),
        ("/console/operators", {"GET": operators_page, "POST": operators_action}),
    ]


async def _allowed(request: web.Request, what: str) -> tuple[Any, str, str] | web.Response:
    signed = await console._signed_in(request)
    if signed is None:
        return console._to_login(request)
    if not may(signed[2], what):
        return console._not_for_role(request)
    return signed


def _context(request: web.Request, signed: tuple[Any, str, str], title: str, **more: Any) -> dict[str, Any]:
    return {
        "title": title,
        "user": signed[0].name,
        "role": signed[2],
        "csrf": console._csrf(signed[1]),
        **more,
    }


async def enterprises_page(request: web.Request, secret: tuple[str, str] | None = None) -> web.StreamResponse:
    signed = await _allowed(request, "operate")
    if isinstance(signed, web.Response):
        return signed
    store = request.app[STORE]
    text = request.query.get("q", "").strip()[:100]
    if text:
        rows = await console_store.search_enterprises(store, text, FOUND)
    else:
        rows = (await db.enterprise_page(store, 0, FOUND))[1]
    found = []
    for row in rows:
        prefixes = []
        for p in await db.prefixes_of(store, row.id):
            state = PrefixState(p.state)
            targets = [(s.value, STATE_NAMES[s]) for s in sorted(TRANSITIONS[state])]
            prefixes.append(
                {"display": p.display, "state": STATE_NAMES[state], "targets": targets, "note": p.review_note}
            )
        users = await db.users_of(store, row.id)
        found.append({"row": row, "prefixes": prefixes, "users": users})
    title = portal._t(request, "企业与前缀", "Enterprises and prefixes")
    return console._page(
        request,
        "console_enterprises.html",
        _context(request, signed, title, q=text, found=found, secret=secret),
    )


async def prefix_action(request: web.Request) -> web.StreamResponse:
    """A prefix's state changed, or its Handle secret replaced."""
    checked = await console._session_form(request, "operate")
    if isinstance(checked, web.Response):
        return checked
    signed, form = checked
    prefix, action = form.get("prefix", ""), form.get("action", "")
    operators = request.app[OPERATORS]
    if action == "rotate":
        secret = await operators.rotate_credentials(prefix, {}, signed[0])
        assert secret is not None
        return await enterprises_page(request, (f"300:0.NA/{prefix}", secret))
    if action == "state":
        raw = form.get("state", "")
        if not (raw.isascii() and raw.isdigit() and len(raw) == 1):
            raise HandleError(RC.INVALID_VALUE, "choose a state", zh="请选择状态")
        reason = form.get("reason", "").strip()[:200]
        change = await operators.set_prefix_state(prefix, {"state": int(raw), "reason": reason}, signed[0])
        if change.secret is not None:  # enabled the first time: its administrator's secret, once
            return await enterprises_page(request, (f"300:0.NA/{prefix}", change.secret))
        return portal._see_other(f"/console/enterprises?q={prefix}")
    raise HandleError(RC.INVALID_VALUE, "unknown action", zh="未知的操作")


async def node_page(request: web.Request) -> web.StreamResponse:
    signed = await _allowed(request, "operate")
    if isinstance(signed, web.Response):
        return signed
    store = request.app[STORE]
    day = today()
    report = await standing(store, day)
    first = day - timedelta(days=29)
    recent = await counts.daily_series(store, None, first, day)
    year_start = day.replace(month=1, day=1)
    year = await counts.daily_series(store, None, year_start, day)
    pending, delivered, oldest = await counts.outbox_totals(store)
    lookup = request.app[LOOKUP]
    t = portal._t
    try:
        schema: Any = await store.ping()
    except HandleError as exc:
        schema = exc.message
    context = _context(
        request,
        signed,
        t(request, "节点运行", "The node"),
        node=report.node_json(),
        resolutions=daily_bars(
            t(
                request,
                "每日解析量（虚线：日均 1000 万的门槛）",
                "Resolutions a day (dashed: the 10 million a day threshold)",
            ),
            first,
            series(recent, first, 30, "resolutions"),
            "#116329",
            RESOLUTIONS_PER_DAY,
        ),
        registrations=cumulative(
            t(
                request,
                "今年累计登记量（虚线：年 3000 万的门槛进度）",
                "Registrations this year (dashed: the 30 million a year pace)",
            ),
            day.year,
            series(year, year_start, (day - year_start).days + 1, "registrations"),
            REGISTRATIONS_PER_YEAR,
        ),
        outbox={"pending": pending, "delivered": delivered, "oldest": round(oldest, 1)},
        cache={"entries": len(lookup.cache), "bytes": lookup.cache.bytes, "trusted": lookup.cache.trusted},
        database={"schema": schema, "expected": request.app[SCHEMA_VERSION], "pid": os.getpid()},
        problems=[
            (datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S"), level, name, message, rid)
            for at, level, name, message, rid in reversed(RECENT.records)
        ],
    )
    return console._page(request, "console_node.html", context)


def _time(raw: str) -> datetime | None:
    if not raw:
        return None
    try:
        found = datetime.fromisoformat(raw)
        # in UTC here: a time at the edge of the calendar (9999-12-31T23:59-05:00) would overflow
        # when the driver converts it
        return (found if found.tzinfo else found.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise HandleError(
            RC.INVALID_VALUE, f"not a time: {raw[:40]}", zh=f"时间格式不正确：{raw[:40]}"
        ) from None


async def audit_page(request: web.Request) -> web.StreamResponse:
    signed = await _allowed(request, "operate")
    if isinstance(signed, web.Response):
        return signed
    query = request.query
    raw_page, raw_enterprise = query.get("page", "0"), query.get("enterprise", "")
    page = int(raw_page) if raw_page.isascii() and raw_page.isdigit() and len(raw_page) < 7 else 0
    enterprise = (
        int(raw_enterprise)
        if raw_enterprise.isascii() and raw_enterprise.isdigit() and len(raw_enterprise) < 18
        else None
    )
    handle = query.get("handle", "").strip()[:300] or None
    trail = await request.app[OPERATORS].audit_trail(
        handle, enterprise, _time(query.get("from", "")), _time(query.get("to", "")), page, AUDIT_PAGE
    )
    form = {k: query.get(k, "") for k in ("handle", "enterprise", "from", "to")}
    title = portal._t(request, "审计查询", "Audit search")
    return console._page(
        request,
        "console_audit.html",
        _context(request, signed, title, trail=trail, page=page, size=AUDIT_PAGE, form=form),
    )


async def operators_page(request: web.Request, status: int = 200) -> web.StreamResponse:
    signed = await _allowed(request, ADMIN)
    if isinstance(signed, web.Response):
        return signed
    accounts = await request.app[CONSOLE_OPERATORS].list()
    title = portal._t(request, "控制台账号", "Console accounts")
    return console._page(
        request, "console_operators.html", _context(request, signed, title, accounts=accounts), status
    )


async def operators_action(request: web.Request) -> web.StreamResponse:
    checked = await console._session_form(request, ADMIN)
    if isinstance(checked, web.Response):
        return checked
    signed, form = checked
    accounts = request.app[CONSOLE_OPERATORS]
    username, role = form.get("username", "").strip(), form.get("role", "")
    if form.get("action") == "create":
        await accounts.create(username, form.get("password", ""), role, signed[0])
    else:
        await accounts.change(username, role, form.get("disabled") == "1", signed[0])
    return portal._see_other("/console/operators")
