"""The Handle API's sessions and its `Authorization: Handle` scheme (Handle.Net 9 manual, "HTTP JSON
REST API: authentication"; the reference's `SessionsServlet` and `StandardHandleAuthenticationFilter`
in MistraR/handle net/handle/server/servletcontainer).

- `POST /api/sessions` opens a session: 201, `Location: /api/sessions/this`, `{sessionId, nonce}`.
  With Basic credentials it is authenticated at once as that identity.
- A client proves a key by sending `Authorization: Handle sessionId="...", id="300:0.NA/...",
  type="HS_PUBKEY"|"HS_SECKEY", cnonce="<base64>", alg="SHA256"|..., signature="<base64>"` (for
  PBKDF2 also salt, iterations, length): the signature or MAC is over `nonce || cnonce`. Sent to
  `PUT /api/sessions/this` (or `POST`), or with any request of the APIs.
- Afterwards `Authorization: Handle sessionId="..."` alone stands for that identity, on every
  worker and instance, until the session expires (--handle-session-ttl) or `DELETE
  /api/sessions/this` ends it. `GET /api/sessions/this` says whether it is authenticated.

As in the reference, the scheme needs a secure channel: HTTPS (direct, or through a trusted proxy
that says so), or a client on the loopback, where there is no network to listen on. Elsewhere the
answer is 403.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson
from aiohttp import web

from resolver.core.errors import RC, HandleError
from resolver.core.permissions import Identity
from resolver.http.errors import mapped, method_not_allowed
from resolver.http.forwarded import FORWARDED_BASE
from resolver.http.keys import AUTHENTICATOR, CONFIG, HANDLE_SESSIONS, RATE_LIMITER
from resolver.services.authentication import parse_identity
from resolver.services.handle_sessions import HandleHeader, Session, answer_fields, parse_handle_header

_JSON = "application/json"


def secure(request: web.Request) -> bool:
    """HTTPS, directly or as a trusted proxy forwarded it, or a loopback client."""
    if request.secure or request.get(FORWARDED_BASE, "").startswith("https://"):
        return True
    try:
        return ipaddress.ip_address((request.remote or "").partition("%")[0]).is_loopback
    except ValueError:
        return False


def _insecure() -> HandleError:
    error = HandleError(
        RC.AUTHENTICATION_FAILED,
        "Authorization: Handle and /api/sessions need HTTPS",
        zh="Authorization: Handle 与 /api/sessions 仅可经 HTTPS 使用",
    )
    error.status = 403
    return error


def _needed(message: str, zh: str) -> HandleError:
    return HandleError(RC.AUTHENTICATION_NEEDED, message, zh=zh)


def _parse(header: str) -> HandleHeader:
    parsed = parse_handle_header(header)
    if parsed is None:
        raise _needed(
            "Error parsing Authorization: Handle (name=value fields separated by commas)",
            "无法解析 Authorization: Handle（应为以逗号分隔的 name=value 字段）",
        )
    version = parsed.get("version")
    if version is not None and version != "0":
        raise _needed("Unknown version in Authorization: Handle", "Authorization: Handle 的版本未知")
    return parsed


def _session(request: web.Request, parsed: HandleHeader) -> Session:
    session_id = parsed.get("sessionid")
    if session_id is None:
        raise _needed(
            "Authorization: Handle needs a sessionId: open a session with POST /api/sessions",
            "Authorization: Handle 需要 sessionId：请先以 POST /api/sessions 建立会话",
        )
    session = request.app[HANDLE_SESSIONS].open(session_id)
    if session is None:
        raise _needed("the session is unknown or has expired", "会话不存在或已过期")
    return session


async def _prove(request: web.Request, parsed: HandleHeader, session: Session) -> Identity:
    """Check the challenge answer of `parsed` against the session's nonce, and remember it."""
    throttle = request.app[RATE_LIMITER].throttle(request)
    try:
        user, auth_type, _alg, cnonce, response = answer_fields(parsed)
        index, handle = parse_identity(user, request.app[CONFIG].limits)
        identity = await request.app[AUTHENTICATOR].verify_answer(
            auth_type, handle, index, session.nonce, cnonce, response, throttle
        )
    except HandleError as exc:
        if exc.rc not in (RC.AUTHENTICATION_FAILED, RC.AUTHENTICATION_NEEDED):
            raise  # 429 past the failure limits, 503 while the database is away
        # the reference answers 401 to a failed answer on a secure channel
        raise HandleError(RC.AUTHENTICATION_NEEDED, exc.message, zh=exc.zh) from None
    await request.app[HANDLE_SESSIONS].remember(session, identity)
    return identity


async def handle_scheme(request: web.Request, header: str) -> Identity:
    """The identity an `Authorization: Handle` header proves: a challenge answer, or a session
    authenticated before. rc 402 (HTTP 401) when it proves none, 403 off a secure channel."""
    if not secure(request):
        raise _insecure()
    throttle = request.app[RATE_LIMITER].throttle(request)
    try:
        parsed = _parse(header)
        session = _session(request, parsed)
    except HandleError:
        throttle.failed(None)
        raise
    if parsed.authenticating:
        return await _prove(request, parsed, session)
    identity = await request.app[HANDLE_SESSIONS].identity(session)
    if identity is None:
        raise _needed(
            "the session is not authenticated: send a challenge answer (id, type, cnonce, alg, signature)",
            "会话尚未认证：请发送挑战应答（id、type、cnonce、alg、signature）",
        )
    return identity


def _representation(session: Session, identity: Identity | None, error: str | None = None) -> dict[str, Any]:
    """`SessionsServlet.getSessionRepresentation`."""
    import base64

    body: dict[str, Any] = {"sessionId": session.id, "nonce": base64.b64encode(session.nonce).decode()}
    if identity is not None:
        body["authenticated"] = True
        body["id"] = f"{identity.index}:{identity.text}"
    if error is not None:
        body["error"] = error
    return body


def _json(body: dict[str, Any], status: int = 200, **headers: str) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=_JSON, headers=headers)


def _header(request: web.Request) -> str | None:
    return request.headers.get("Authorization")


async def start(request: web.Request) -> web.Response:
    """POST /api/sessions."""
    request.app[RATE_LIMITER].check(request)
    if not secure(request):
        raise _insecure()
    header = _header(request)
    sessions = request.app[HANDLE_SESSIONS]
    scheme = (header or "").strip().partition(" ")[0].lower()
    if scheme == "handle" and _parse(header or "").get("sessionid") is not None:
        raise HandleError(
            RC.PROTOCOL_ERROR,
            "POST /api/sessions opens a new session: send no sessionId (use /api/sessions/this)",
            zh="POST /api/sessions 用于新建会话，不应携带 sessionId（已有会话请用 /api/sessions/this）",
        )
    session = sessions.start()
    identity = None
    if scheme == "basic":
        identity = await request.app[AUTHENTICATOR].authenticate(
            header or "", request.app[RATE_LIMITER].throttle(request)
        )
        await sessions.remember(session, identity)
    return _json(_representation(session, identity), 201, Location="/api/sessions/this")


async def this(request: web.Request) -> web.Response:
    """GET, PUT and POST /api/sessions/this: the session's state; with an answer, authenticate it."""
    request.app[RATE_LIMITER].check(request)
    if not secure(request):
        raise _insecure()
    parsed = _parse(_header(request) or "")
    session = _session(request, parsed)
    if parsed.authenticating:
        try:
            identity: Identity | None = await _prove(request, parsed, session)
        except HandleError as exc:
            if exc.rc != RC.AUTHENTICATION_NEEDED:
                raise
            return _json(_representation(session, None, exc.message), 401)
    else:
        identity = await request.app[HANDLE_SESSIONS].identity(session)
    return _json(_representation(session, identity))


async def end(request: web.Request) -> web.Response:
    """DELETE /api/sessions/this."""
    request.app[RATE_LIMITER].check(request)
    if not secure(request):
        raise _insecure()
    parsed = _parse(_header(request) or "")
    session = request.app[HANDLE_SESSIONS].open(parsed.get("sessionid") or "")
    if session is None:
        error = HandleError(RC.PROTOCOL_ERROR, "no such session", zh="会话不存在")
        error.status = 403
        raise error
    await request.app[HANDLE_SESSIONS].end(session)
    return web.Response(status=204)


async def elsewhere(request: web.Request) -> web.Response:
    """/api/sessions/<anything but this>: the reference answers 403."""
    error = HandleError(
        RC.PROTOCOL_ERROR,
        "the only session a client names is /api/sessions/this",
        zh="会话只能以 /api/sessions/this 指代",
    )
    error.status = 403
    raise error


def add_routes(app: web.Application) -> None:
    """Register /api/sessions and /api/sessions/this."""
    resource = app.router.add_resource("/api/sessions")
    resource.add_route("POST", mapped(start))
    resource.add_route("*", method_not_allowed("POST"))
    resource = app.router.add_resource("/api/sessions/this")
    for method in ("GET", "PUT", "POST"):
        resource.add_route(method, mapped(this))
    resource.add_route("DELETE", mapped(end))
    resource.add_route("*", method_not_allowed("GET, PUT, POST, DELETE"))
    app.router.add_route("*", r"/api/sessions/{other:[\s\S]+}", mapped(elsewhere))
