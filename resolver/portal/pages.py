"""The enterprise portal's pages: sign-in, the enterprise's identifiers, sign-out (issue 18, the
first pages; the rest of the portal builds on these rules).

- Accounts are the enterprise API's (services/accounts.py): the same password hashing, the same
  failed-login limits, and the session is the same revocable token `POST /identity/token` gives,
  kept in a cookie: HttpOnly, SameSite=Strict, Path=/portal, Secure when the request came over
  HTTPS (directly or through a trusted proxy), for as long as the token lives (--token-ttl).
- Every form carries a CSRF token: before sign-in a random one that must equal the `portal_csrf`
  cookie (double submit), afterwards a digest of the session token; a POST without it is 403.
- Listing goes through `Registry.list_handles`, whose rule lets an enterprise user list the
  prefixes of its own enterprise and nothing else.
- Chinese first; `?lang=en` switches to English and is remembered in a cookie.
- Pages are plain HTML with no script, a strict Content-Security-Policy and no caching.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import aiohttp_jinja2
import jinja2
from aiohttp import web

from resolver.core.errors import RC, HandleError, RateLimited, in_chinese
from resolver.core.permissions import Identity
from resolver.http.bodies import read_body
from resolver.http.forwarded import FORWARDED_BASE
from resolver.http.keys import ACCOUNTS, CONFIG, RATE_LIMITER
from resolver.http.ratelimit import TokenBuckets
from resolver.services.authentication import UNTHROTTLED

SESSION_COOKIE = "portal_session"
CSRF_COOKIE = "portal_csrf"
LANG_COOKIE = "portal_lang"
PAGE_SIZE = 50
MAX_FORM = 16 * 1024  # a sign-in form is a few hundred octets
MAX_FIELDS = 16
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def setup(app: web.Application) -> None:
    """The template environment (autoescaped) and the routes."""
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("resolver.portal", "templates"), autoescape=True)
    from resolver.portal import apply as applying  # its pages use this module's helpers
    from resolver.portal import data_templates, figures, labels, listing, records, uploads

    # applications from one client network (an IPv4 address, an IPv6 /64), per worker
    app[applying.APPLICATIONS] = TokenBuckets(
        applying.APPLICATIONS_PER_HOUR / 3600.0, applying.APPLICATIONS_BURST
    )
    app[labels.LABELS_BUSY] = asyncio.Lock()  # one label sheet drawn at a time per worker
    routes: list[tuple[str, dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]] = [
        ("/portal", {"GET": _to_portal}),
        ("/portal/", {"GET": listing.identifiers}),
        ("/portal/login", {"GET": login_page, "POST": login}),
        ("/portal/apply", {"GET": applying.apply_page, "POST": applying.apply}),
        ("/portal/logout", {"POST": logout}),
        *records.routes(),
        *uploads.routes(),
        *labels.routes(),
        *figures.routes(),
        *data_templates.routes(),
    ]
    for path, methods in routes:
        resource = app.router.add_resource(path)
        for method, handler in methods.items():
            resource.add_route(method, _guarded(handler))
        resource.add_route("*", _guarded(_not_allowed))


def _guarded(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The per-address limit, the language, and the portal's headers on every answer."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            request.app[RATE_LIMITER].check(request)
            response = await handler(request)
        except RateLimited as exc:
            response = _page(
                request,
                "message.html",
                {"message": _t(request, "请求过于频繁，请稍后再试", "Too many requests; try again later")},
                429,
            )
            response.headers["Retry-After"] = str(exc.retry_after)
        except HandleError as exc:
            # the database away (503, retry), a refusal (403), anything else a client could cause
            # (400): a page that says so, never aiohttp's bare 500
            status = exc.status or {
                RC.SERVER_TOO_BUSY: 503,
                RC.INSUFFICIENT_PERMISSIONS: 403,
                RC.HANDLE_NOT_FOUND: 404,
                RC.HANDLE_ALREADY_EXISTS: 409,
            }.get(exc.rc, 400)
            message = in_chinese(exc) if _lang(request) == "zh" else exc.message
            response = _page(request, "message.html", {"message": message}, status)
            if status == 503:
                response.headers["Retry-After"] = str(exc.retry_after or 1)
        wanted = request.query.get("lang")
        if wanted in ("zh", "en"):
            response.set_cookie(
                LANG_COOKIE,
                wanted,
                max_age=365 * 86400,
                path="/portal",
                httponly=True,
                samesite="Strict",
                secure=secure(request),
            )
        response.headers.update(_HEADERS)
        return response

    return wrapper


def secure(request: web.Request) -> bool:
    """HTTPS, directly or as a trusted proxy forwarded it: where cookies are marked Secure."""
    return request.secure or request.get(FORWARDED_BASE, "").startswith("https://")


def _lang(request: web.Request) -> str:
    wanted = request.query.get("lang") or request.cookies.get(LANG_COOKIE)
    return "en" if wanted == "en" else "zh"


def _t(request: web.Request, zh: str, en: str) -> str:
    return en if _lang(request) == "en" else zh


def _page(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    lang = _lang(request)
    context = {
        "lang": lang,
        "t": (lambda zh, en: en if lang == "en" else zh),
        "user": None,
        "area": "portal",
        **context,
    }
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _session_csrf(token: str) -> str:
    """The CSRF token of a signed-in session: not guessable without the session cookie."""
    return hashlib.sha256(b"portal-csrf\0" + token.encode()).hexdigest()[:40]


class BadForm(HandleError):
    """A form body that is not URL-encoded UTF-8 with the portal's few fields."""

    def __init__(self, message: str, zh: str, status: int = 400) -> None:
        super().__init__(RC.PROTOCOL_ERROR, message, zh=zh)
        self.status = status


async def _form(
    request: web.Request, max_bytes: int = MAX_FORM, max_fields: int = MAX_FIELDS
) -> dict[str, str]:
    """The fields of a URL-encoded form (the only kind the pages send): read within the body
    limit and timeout of every API, decoded as strict UTF-8; the first value of a repeated field."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise BadForm(
            "forms are sent as application/x-www-form-urlencoded",
            "表单须以 application/x-www-form-urlencoded 提交",
            415,
        )
    raw = await read_body(request, max_bytes)
    try:
        text = raw.decode("ascii")  # URL-encoded: every octet above 0x7f is percent-escaped
        pairs = parse_qsl(
            text, keep_blank_values=True, max_num_fields=max_fields, encoding="utf-8", errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise BadForm("the form is not URL-encoded UTF-8", "表单不是 URL 编码的 UTF-8") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of two tokens, whatever characters the given one holds."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


async def checked_form(request: web.Request, cookie_name: str) -> dict[str, str] | None:
    """The fields of a form posted before sign-in, or None when it must be refused (403): from
    another site, or without the CSRF token its cookie `cookie_name` holds (double submit)."""
    if _cross_site(request):
        return None
    form = await _form(request)
    cookie = request.cookies.get(cookie_name, "")
    if not cookie or not _same(form.get("csrf", ""), cookie):
        return None
    return form


def _cross_site(request: web.Request) -> bool:
    """A browser's POST from another site (Sec-Fetch-Site, else Origin): refused whatever its
    tokens say, which also stops cookie tossing from a sibling subdomain. Clients that send
    neither header (no browser) are judged by the tokens alone."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    base = request.get(FORWARDED_BASE) or f"{request.scheme}://{request.host}"
    return origin.rstrip("/") != str(base).rstrip("/")


def _forbidden(request: web.Request) -> web.Response:
    message = _t(
        request,
        "表单已失效（缺少或不匹配的 CSRF 令牌），请刷新页面后重试",
        "The form has expired (missing or wrong CSRF token); reload the page and try again",
    )
    return _page(request, "message.html", {"message": message}, 403)


async def _signed_in(request: web.Request) -> tuple[Identity, str] | None:
    """The identity of the session cookie, or None (none, two of them, or one that no longer
    signs in). A bad cookie does not count against the address's failed-authentication limits:
    a stale or planted one would otherwise lock the browser out of signing in at all."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or request.headers.get("Cookie", "").count(f"{SESSION_COOKIE}=") > 1:
        return None
    try:
        identity = await request.app[ACCOUNTS].from_token(token, UNTHROTTLED)
    except HandleError as exc:
        if exc.rc == RC.AUTHENTICATION_NEEDED:
            return None  # expired, revoked, or the account is gone: sign in again
        raise
    return identity, token


def _to_login(request: web.Request) -> web.Response:
    """To the sign-in page, forgetting a session cookie that did not sign in."""
    response = _see_other("/portal/login")
    if SESSION_COOKIE in request.cookies:
        response.del_cookie(SESSION_COOKIE, path="/portal")
    return response


async def _to_portal(request: web.Request) -> web.StreamResponse:
    return _see_other("/portal/")


async def _not_allowed(request: web.Request) -> web.StreamResponse:
    return _page(
        request, "message.html", {"message": _t(request, "不支持的请求方法", "Method not allowed")}, 405
    )


async def login_page(
    request: web.Request, error: str | None = None, username: str = "", status: int = 200
) -> web.StreamResponse:
    if error is None and await _signed_in(request) is not None:
        return _see_other("/portal/")
    csrf = _pre_csrf(request)
    response = _page(
        request,
        "login.html",
        {"title": _t(request, "登录", "Sign in"), "csrf": csrf, "error": error, "username": username},
        status,
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, path="/portal", httponly=True, samesite="Strict", secure=secure(request)
    )
    return response


async def login(request: web.Request) -> web.StreamResponse:
    form = await checked_form(request, CSRF_COOKIE)
    if form is None:
        return _forbidden(request)
    username, password = form.get("username", "").strip(), form.get("password", "")
    if not username or not password or len(username) > 64 or len(password) > 1024:
        return await login_page(
            request,
            _t(request, "请填写用户名和密码", "Enter your user name and password"),
            username[:64],
            400,
        )
    try:
        token, _expires = await request.app[ACCOUNTS].login(
            username, password, request.app[RATE_LIMITER].throttle(request)
        )
    except RateLimited as exc:
        response = await login_page(
            request,
            _t(
                request,
                f"登录失败次数过多，请 {exc.retry_after} 秒后再试",
                f"Too many failed sign-ins; try again in {exc.retry_after} s",
            ),
            username,
            429,
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except HandleError as exc:
        if exc.rc != RC.AUTHENTICATION_NEEDED:
            raise
        message = in_chinese(exc) if _lang(request) == "zh" else exc.message
        return await login_page(request, message, username, 401)
    response = _see_other("/portal/")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(request.app[CONFIG].token_ttl),
        path="/portal",
        httponly=True,
        samesite="Strict",
        secure=secure(request),
    )
    response.del_cookie(CSRF_COOKIE, path="/portal")
    return response


async def signed_form(
    request: web.Request, max_bytes: int = MAX_FORM, max_fields: int = MAX_FIELDS
) -> tuple[Identity, str, dict[str, str]] | web.Response:
    """(identity, session token, fields) of a form posted in a session, or the answer refusing
    it: from another site or without the session's CSRF token (403), no session (to sign-in)."""
    if _cross_site(request):
        return _forbidden(request)
    session = await _signed_in(request)
    form = await _form(request, max_bytes, max_fields)
    if session is None:
        return _to_login(request)
    if not _same(form.get("csrf", ""), _session_csrf(session[1])):
        return _forbidden(request)
    return session[0], session[1], form


async def logout(request: web.Request) -> web.StreamResponse:
    posted = await signed_form(request)
    if isinstance(posted, web.Response):
        return posted
    _identity, token, _form_fields = posted
    await request.app[ACCOUNTS].logout(token)  # void on every worker at once
    response = _see_other("/portal/login")
    response.del_cookie(SESSION_COOKIE, path="/portal")
    return response


def _pre_csrf(request: web.Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_hex(20)
