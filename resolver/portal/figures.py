"""The portal's figures, credentials and audit pages (issue 18).

- Figures: registrations and resolutions per day over the last 30 days (all of the enterprise's
  prefixes, or one), and this year's registrations with the projection `resolver stats` makes
  (services/statistics.standing), as server-drawn SVG (resolver/portal/charts.py).
- Credentials: the enterprise's API users, and its prefixes' Handle administrator identities; the
  secret of one of them is replaced through the operator service's own method, restricted to the
  enterprise's prefixes, and shown once.
- Audit: the enterprise's own entries of the audit trail (Operators.audit_trail, whose enterprise
  filter is forced to the signed-in enterprise), newest first, paged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from resolver.core.enterprises import READABLE
from resolver.http.keys import OPERATORS, STORE
from resolver.portal import pages
from resolver.portal.charts import cumulative, daily_bars
from resolver.services.statistics import standing, today
from resolver.store import enterprises as db
from resolver.store import statistics as counts

AUDIT_PAGE = 50
DAYS = 30


def routes() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("/portal/figures", {"GET": figures_page}),
        ("/portal/credentials", {"GET": credentials_page, "POST": rotate}),
        ("/portal/audit", {"GET": audit_page}),
    ]


def series(rows: list[counts.DayCounts], first: Any, days: int, field: str) -> list[int]:
    """One value a day from `first` for `days` days (0 where nothing was counted)."""
    by_day = {row.day: int(getattr(row, field)) for row in rows}
    return [by_day.get(first + timedelta(days=n), 0) for n in range(days)]


async def figures_page(request: web.Request) -> web.StreamResponse:
    session = await pages._signed_in(request)
    if session is None:
        return pages._to_login(request)
    identity, token = session
    assert identity.enterprise_id is not None
    store = request.app[STORE]
    rows = await db.prefixes_of(store, identity.enterprise_id)
    shown = [p for p in rows if p.state in READABLE]
    chosen = request.query.get("prefix", "")
    picked = [p.prefix for p in shown if p.display == chosen] or [p.prefix for p in shown]
    day = today()
    first = day - timedelta(days=DAYS - 1)
    recent = await counts.daily_series(store, picked, first, day) if picked else []
    year_start = day.replace(month=1, day=1)
    year = await counts.daily_series(store, picked, year_start, day) if picked else []
    report = await standing(store, day)
    mine = [report.prefixes[p] for p in picked if p in report.prefixes]
    t = pages._t
    context = {
        "title": t(request, "统计", "Figures"),
        "user": identity.text,
        "csrf": pages._session_csrf(token),
        "prefixes": [p.display for p in shown],
        "prefix": chosen if chosen in {p.display for p in shown} else "",
        "registrations": daily_bars(
            t(request, "最近 30 天每日登记量", "Registrations a day, last 30 days"),
            first,
            series(recent, first, DAYS, "registrations"),
        ),
        "resolutions": daily_bars(
            t(request, "最近 30 天每日解析量", "Resolutions a day, last 30 days"),
            first,
            series(recent, first, DAYS, "resolutions"),
            "#116329",
        ),
        "this_year": cumulative(
            t(request, "今年累计登记量与全年预计", "Registrations this year and the year's projection"),
            day.year,
            series(year, year_start, (day - year_start).days + 1, "registrations"),
            sum(s.registrations_projected for s in mine) or None,
        ),
        "totals": {
            "registrations_30d": sum(r.registrations for r in recent),
            "resolutions_30d": sum(r.resolutions for r in recent),
            "registrations_year": sum(s.registrations_year for s in mine),
            "projected": round(sum(s.registrations_projected for s in mine)),
        },
    }
    return pages._page(request, "figures.html", context)


async def _credentials(request: web.Request, secret: tuple[str, str] | None = None) -> web.Response:
    session = await pages._signed_in(request)
    assert session is not None
    identity, token = session
    assert identity.enterprise_id is not None
    store = request.app[STORE]
    rows = await db.prefixes_of(store, identity.enterprise_id)
    context = {
        "title": pages._t(request, "接口凭据", "API credentials"),
        "user": identity.text,
        "csrf": pages._session_csrf(token),
        "users": await db.users_of(store, identity.enterprise_id),
        "prefixes": [p.display for p in rows if p.state in READABLE],
        "secret": secret,
    }
    return pages._page(request, "credentials.html", context)


async def credentials_page(request: web.Request) -> web.StreamResponse:
    if await pages._signed_in(request) is None:
        return pages._to_login(request)
    return await _credentials(request)


async def rotate(request: web.Request) -> web.StreamResponse:
    posted = await pages.signed_form(request)
    if isinstance(posted, web.Response):
        return posted
    identity, _token, form = posted
    prefix = form.get("prefix", "")
    # another enterprise's prefix is answered as one that is not allocated (404)
    secret = await request.app[OPERATORS].rotate_credentials(
        prefix, {}, identity, identity.enterprise_id, READABLE
    )
    assert secret is not None  # the node generated it
    return await _credentials(request, (f"300:0.NA/{prefix}", secret))


async def audit_page(request: web.Request) -> web.StreamResponse:
    session = await pages._signed_in(request)
    if session is None:
        return pages._to_login(request)
    identity, token = session
    raw = request.query.get("page", "0")
    page = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 7 else 0
    trail = await request.app[OPERATORS].audit_trail(
        None, identity.enterprise_id, None, None, page, AUDIT_PAGE
    )
    assert identity.enterprise_id is not None
    own = {
        f"300:0.NA/{p.display}".lower()
        for p in await db.prefixes_of(request.app[STORE], identity.enterprise_id)
    }
    for entry in trail["items"]:  # the node's own people are "the node operator", not their names
        actor = str(entry["actor"])
        if not actor.startswith("user:") and actor.lower() not in own:
            entry["actor"] = pages._t(request, "节点运营方", "the node operator")
    context = {
        "title": pages._t(request, "操作记录", "Audit trail"),
        "user": identity.text,
        "csrf": pages._session_csrf(token),
        "trail": trail,
        "page": page,
        "size": AUDIT_PAGE,
    }
    return pages._page(request, "audit.html", context)
