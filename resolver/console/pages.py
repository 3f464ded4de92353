"""The operator console's first pages (issue 18): sign-in as the node administrator, the review
queue of prefixes awaiting review, approve or reject with a note the applicant reads in the portal.

- Sign-in checks the administrator's secret as Basic does (services/authentication.py: the same
  hashing and failed-authentication limits); only the node administrator (`300:0.NA/<node>`) gets
  in. The session is a Handle API session (services/handle_sessions.py): server-side, shared by
  every worker and instance, its id in an HttpOnly, SameSite=Strict cookie on /console (Secure
  under HTTPS), ended on sign-out.
- Decisions go through the operator service's `set_prefix_state` (the life cycle's transitions, the
  audit trail, the top-level node's outbox): approve is 5 then 1, reject is 3 and needs a note.
- Forms carry a CSRF token (a digest of the session id), and a browser POST from another site is
  refused, as in the portal (resolver/portal/pages.py, whose templates and helpers these are).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from resolver.core.enterprises import STATE_NAMES, PrefixState
from resolver.core.errors import RC, HandleError, in_chinese
from resolver.core.handles import check_prefix
from resolver.core.permissions import Identity
from resolver.http.keys import (
    AUTHENTICATOR,
    CONFIG,
    CONSOLE_OPERATORS,
    HANDLE_SESSIONS,
    OPERATORS,
    RATE_LIMITER,
    REGISTRY,
    STORE,
)
from resolver.portal import pages as portal
from resolver.services.console_operators import ADMIN, PREFIX, identity_of, may
from resolver.store import enterprises as db

SESSION_COOKIE = "console_session"
CSRF_COOKIE = "console_csrf"
QUEUE_SIZE = 100
IN_REVIEW = frozenset({PrefixState.AWAITING_REVIEW, PrefixState.UNDER_REVIEW})


def add_routes(app: web.Application) -> None:
    from resolver.console import manage  # its pages use this module's helpers

    routes: list[tuple[str, dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]] = [
        ("/console", {"GET": _to_console}),
        ("/console/", {"GET": queue}),
        ("/console/login", {"GET": login_page, "POST": login}),
        ("/console/logout", {"POST": logout}),
        ("/console/review", {"POST": review}),
        *manage.routes(),
    ]
    for path, methods in routes:
        resource = app.router.add_resource(path)
        for method, handler in methods.items():
            resource.add_route(method, portal._guarded(handler))
        resource.add_route("*", portal._guarded(portal._not_allowed))


def _page(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    return portal._page(request, template, {"area": "console", **context}, status)


def _csrf(session_id: str) -> str:
    return hashlib.sha256(b"console-csrf\0" + session_id.encode()).hexdigest()[:40]


async def _to_console(request: web.Request) -> web.StreamResponse:
    return portal._see_other("/console/")


async def _signed_in(request: web.Request) -> tuple[Identity, str, str] | None:
    """(identity, session id, role) of the session cookie: the node administrator, or a console
    account that is still enabled (its role read now); None otherwise."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id or request.headers.get("Cookie", "").count(f"{SESSION_COOKIE}=") > 1:
        return None
    sessions = request.app[HANDLE_SESSIONS]
    session = sessions.open(session_id)
    if session is None:
        return None
    identity = await sessions.identity(session, console=True)
    if identity is None:
        return None
    if request.app[REGISTRY].is_node_admin(identity):
        return identity, session_id, ADMIN
    role = await request.app[CONSOLE_OPERATORS].role_of(identity)
    if role is None:
        return None
    return identity_of(identity.text[len(PREFIX) :]), session_id, role


def _to_login(request: web.Request) -> web.Response:
    response = portal._see_other("/console/login")
    if SESSION_COOKIE in request.cookies:
        response.del_cookie(SESSION_COOKIE, path="/console")
    return response


async def login_page(request: web.Request, error: str | None = None, status: int = 200) -> web.StreamResponse:
    if error is None and await _signed_in(request) is not None:
        return portal._see_other("/console/")
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_hex(20)
    context = {
        "title": portal._t(request, "运营控制台", "Operator console"),
        "csrf": csrf,
        "error": error,
        "identity": f"300:0.NA/{request.app[CONFIG].node_prefix}",
    }
    response = _page(request, "console_login.html", context, status)
    response.set_cookie(
        CSRF_COOKIE, csrf, path="/console", httponly=True, samesite="Strict", secure=portal.secure(request)
    )
    return response


async def login(request: web.Request) -> web.StreamResponse:
    form = await portal.checked_form(request, CSRF_COOKIE)
    if form is None:
        return portal._forbidden(request)
    identity_text, secret = form.get("identity", "").strip(), form.get("secret", "")
    if not identity_text or not secret or len(identity_text) > 300 or len(secret) > 1024:
        return await login_page(
            request, portal._t(request, "请填写管理员身份和密钥", "Enter the identity and the secret"), 400
        )
    if ":" not in identity_text:  # a console account (reviewer or operator), not a Handle identity
        try:
            account, _role = await request.app[CONSOLE_OPERATORS].check(
                identity_text, secret, request.app[RATE_LIMITER].throttle(request)
            )
        except HandleError as exc:
            if exc.rc != RC.AUTHENTICATION_NEEDED:
                raise
            return await login_page(
                request, in_chinese(exc) if portal._lang(request) == "zh" else exc.message, 401
            )
        return await _start_session(request, account)
    # as pyhandle sends it: the user name percent-encoded, so that its own colon is not the separator
    user = quote(identity_text, safe="")
    header = "Basic " + base64.b64encode(f"{user}:{secret}".encode("utf-8", "surrogatepass")).decode()
    try:
        identity = await request.app[AUTHENTICATOR].authenticate(
            header, request.app[RATE_LIMITER].throttle(request)
        )
    except HandleError as exc:
        if exc.rc != RC.AUTHENTICATION_NEEDED:
            raise
        message = in_chinese(exc) if portal._lang(request) == "zh" else exc.message
        return await login_page(request, message, 401)
    if not request.app[REGISTRY].is_node_admin(identity):
        message = portal._t(
            request, "只有节点管理员可以使用运营控制台", "Only the node administrator may use the console"
        )
        return await login_page(request, message, 403)
    return await _start_session(request, identity)


async def _start_session(request: web.Request, identity: Identity) -> web.Response:
    sessions = request.app[HANDLE_SESSIONS]
    session = sessions.start()
    await sessions.remember(session, identity)
    response = portal._see_other("/console/")
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        max_age=int(sessions.ttl),
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=portal.secure(request),
    )
    response.del_cookie(CSRF_COOKIE, path="/console")
    return response


async def _session_form(
    request: web.Request, what: str = "review"
) -> web.Response | tuple[tuple[Identity, str, str], dict[str, str]]:
    """((identity, session id), fields) of a form posted in a console session, or the answer that
    refuses it: 403 from another site or without the session's CSRF token, to sign-in without one."""
    if portal._cross_site(request):
        return portal._forbidden(request)
    signed = await _signed_in(request)
    form = await portal._form(request)
    if signed is None:
        return _to_login(request)
    if not portal._same(form.get("csrf", ""), _csrf(signed[1])):
        return portal._forbidden(request)
    if not may(signed[2], what):
        return _not_for_role(request)
    return signed, form


def _not_for_role(request: web.Request) -> web.Response:
    message = portal._t(request, "当前账号的角色无权进行此操作", "Your role may not do this")
    return _page(request, "message.html", {"message": message}, 403)


async def logout(request: web.Request) -> web.StreamResponse:
    checked = await _session_form(request)
    if isinstance(checked, web.Response):
        return checked
    signed, _fields = checked
    sessions = request.app[HANDLE_SESSIONS]
    session = sessions.open(signed[1])
    if session is not None:
        await sessions.end(session)  # on every worker: the session lives in Postgres
    response = portal._see_other("/console/login")
    response.del_cookie(SESSION_COOKIE, path="/console")
    return response


async def queue(request: web.Request, done: str | None = None) -> web.StreamResponse:
    signed = await _signed_in(request)
    if signed is None:
        return _to_login(request)
    if not may(signed[2], "review"):
        return _not_for_role(request)
    rows = await db.prefixes_in_review(request.app[STORE], QUEUE_SIZE)
    items = [{**row._asdict(), "state_name": STATE_NAMES[PrefixState(row.state)]} for row in rows]
    context = {
        "title": portal._t(request, "审核队列", "Review queue"),
        "user": signed[0].name,
        "role": signed[2],
        "csrf": _csrf(signed[1]),
        "items": items,
        "done": done,
    }
    return _page(request, "console_queue.html", context)


async def review(request: web.Request) -> web.StreamResponse:
    """Approve (5, then 1) or reject (3, with a note) a prefix, through the operator service."""
    checked = await _session_form(request)
    if isinstance(checked, web.Response):
        return checked
    signed, form = checked
    prefix, decision, reason = (
        form.get("prefix", ""),
        form.get("decision", ""),
        form.get("reason", "").strip(),
    )
    if len(reason) > 200 or any(ord(c) < 32 for c in reason):
        message = portal._t(
            request,
            "审核意见至多 200 个字符，不含控制字符",
            "A note is at most 200 characters, without control characters",
        )
        return _page(request, "message.html", {"message": message}, 400)
    folded = check_prefix(prefix, request.app[CONFIG].limits)  # rc 102 (a 400 page) when it is no prefix
    state = await db.prefix_state(request.app[STORE], folded)
    if state not in (PrefixState.AWAITING_REVIEW, PrefixState.UNDER_REVIEW) and decision in (
        "approve",
        "reject",
    ):
        # a stale tab must not re-enable a prefix the operator disabled, nor reject an enabled one
        message = portal._t(request, f"前缀 {prefix} 不在审核中", f"{prefix} is not awaiting review")
        return _page(request, "message.html", {"message": message}, 409)
    operators = request.app[OPERATORS]
    if decision == "reject":
        if not reason:
            return _page(
                request,
                "message.html",
                {"message": portal._t(request, "驳回须填写审核意见", "A rejection needs a note")},
                400,
            )
        await operators.set_prefix_state(
            prefix, {"state": PrefixState.REJECTED.value, "reason": reason}, signed[0], IN_REVIEW
        )
        done = portal._t(request, f"已驳回 {prefix}", f"{prefix} rejected")
    elif decision == "approve":
        if state == PrefixState.AWAITING_REVIEW:
            await operators.set_prefix_state(
                prefix, {"state": PrefixState.UNDER_REVIEW.value}, signed[0], IN_REVIEW
            )
        # only from under review: a prefix disabled meanwhile is not enabled by a stale decision
        await operators.set_prefix_state(
            prefix,
            {"state": PrefixState.ENABLED.value, "reason": reason},
            signed[0],
            frozenset({PrefixState.UNDER_REVIEW}),
        )
        done = portal._t(request, f"已通过 {prefix}", f"{prefix} approved")
    else:
        return _page(
            request,
            "message.html",
            {"message": portal._t(request, "未知的审核决定", "Unknown decision")},
            400,
        )
    return await queue(request, done)
