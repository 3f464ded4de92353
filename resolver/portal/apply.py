"""The portal's application form (issue 18): anyone may apply for an enterprise prefix; the
enterprise, its prefix awaiting review and the applicant's account are made all or nothing by the
operator API's own rules (resolver/services/applications.py), and the operator reviews it in the
prefix life cycle. One client network may apply APPLICATIONS_PER_HOUR times an hour."""

from __future__ import annotations

import time

from aiohttp import web

from resolver.core.errors import RC, HandleError, in_chinese
from resolver.http.keys import CONFIG, OPERATORS
from resolver.http.ratelimit import TokenBuckets, client_network
from resolver.portal.pages import (
    CSRF_COOKIE,
    _forbidden,
    _lang,
    _page,
    _pre_csrf,
    _t,
    checked_form,
    secure,
)
from resolver.services import applications

APPLICATIONS_PER_HOUR = 3
APPLICATIONS_BURST = 3
APPLICATIONS = web.AppKey("portal_applications", TokenBuckets)
APPLY_FIELDS = ("name", "creditCode", "contact_name", "contact_phone", "contact_email", "prefix", "username")


async def apply_page(
    request: web.Request, error: str | None = None, form: dict[str, str] | None = None, status: int = 200
) -> web.StreamResponse:
    """The application form (anyone may apply; the operator reviews)."""
    csrf = _pre_csrf(request)
    context = {
        "title": _t(request, "申请企业前缀", "Apply for a prefix"),
        "csrf": csrf,
        "error": error,
        "form": {k: (form or {}).get(k, "") for k in APPLY_FIELDS},
        "example": f"{request.app[CONFIG].node_prefix}.45",
    }
    response = _page(request, "apply.html", context, status)
    response.set_cookie(
        CSRF_COOKIE, csrf, path="/portal", httponly=True, samesite="Strict", secure=secure(request)
    )
    return response


async def apply(request: web.Request) -> web.StreamResponse:
    """Register the enterprise, its prefix awaiting review and the applicant's account (the
    operator API's rules, services/applications.py); a refusal shows the form again with the
    reason and what was typed (never the password)."""
    form = await checked_form(request, CSRF_COOKIE)
    if form is None:
        return _forbidden(request)
    address = client_network(request.remote or "")
    # only applications that were made count: a refused one (a typo in the credit code) costs none
    wait = request.app[APPLICATIONS].wait(address, time.monotonic())
    if wait:
        message = _t(
            request,
            "来自本网络的申请过多，请稍后再试",
            "Too many applications from this network; try again later",
        )
        response = await apply_page(request, message, form, 429)
        response.headers["Retry-After"] = str(max(1, int(wait)))
        return response
    try:
        done = await applications.apply(request.app[OPERATORS], form, request.remote or "")
    except HandleError as exc:
        if exc.rc == RC.SERVER_TOO_BUSY:
            raise
        message = in_chinese(exc) if _lang(request) == "zh" else exc.message
        return await apply_page(request, message, form, 409 if exc.rc == RC.HANDLE_ALREADY_EXISTS else 400)
    request.app[APPLICATIONS].take(address, time.monotonic())
    prefix = done["prefix"]
    context = {
        "title": _t(request, "申请已提交", "Application received"),
        "prefix": prefix["prefix"],
        "state": prefix["stateName"],
    }
    response = _page(request, "applied.html", context, 201)
    response.del_cookie(CSRF_COOKIE, path="/portal")
    return response
