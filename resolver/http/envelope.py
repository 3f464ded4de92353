"""The `{status, message, data}` envelope of the enterprise and operator APIs.

status 1 success, -1 not logged in, -2 business failure (the message says why), -3 no permission,
-4 internal error. Business failures answer HTTP 200, as deployed secondary nodes do, except for
limits (413, 429) which keep their HTTP status.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from resolver.core.errors import RC, BodyTimeout, HandleError, PayloadTooLarge, Unavailable, in_chinese
from resolver.core.permissions import Identity
from resolver.http.bodies import check_json, has_nul, read_body
from resolver.http.errors import observe
from resolver.http.handles import identity_of
from resolver.http.keys import ACCOUNTS, CONFIG, RATE_LIMITER, REGISTRY

log = logging.getLogger(__name__)

OK, NOT_LOGGED_IN, FAILED, FORBIDDEN, INTERNAL = 1, -1, -2, -3, -4
_JSON = {"Content-Type": "application/json; charset=utf-8"}

# what aiohttp's own refusals mean, in the language of these APIs (their reason phrase is English)
_HTTP_ZH = {
    400: "请求格式不正确",
    404: "接口不存在",
    405: "该接口不支持此方法",
    408: "请求超时",
    411: "请求须带 Content-Length",
    415: "不支持的请求体类型",
    431: "请求头过大",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def envelope(status: int, message: str, data: Any = None, http_status: int = 200) -> web.Response:
    body = orjson.dumps({"status": status, "message": message, "data": data})
    return web.Response(body=body, status=http_status, headers=_JSON)


def ok(data: Any = None, message: str = "成功") -> web.Response:
    return envelope(OK, message, data)


def enveloped(handler: Handler) -> Handler:
    """Rate-limit the request and turn every error into the envelope."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        response = await _answer(request)
        observe(request, response.status, started)
        return response

    async def _answer(request: web.Request) -> web.StreamResponse:
        try:
            request.app[RATE_LIMITER].check(request)
            if has_nul(request):
                raise HandleError(
                    RC.PROTOCOL_ERROR,
                    "the path or query holds a NUL character (%00)",
                    zh="路径或查询参数中含有 NUL 字符（%00）",
                )
            return await handler(request)
        except HandleError as exc:
            if exc.rc == RC.AUTHENTICATION_NEEDED:
                return envelope(NOT_LOGGED_IN, in_chinese(exc), http_status=401)
            if exc.rc == RC.INSUFFICIENT_PERMISSIONS:
                return envelope(FORBIDDEN, in_chinese(exc), http_status=403)
            if isinstance(exc, PayloadTooLarge):
                return envelope(FAILED, f"请求体超过 {exc.limit} 字节", http_status=413)
            if isinstance(exc, BodyTimeout):
                return envelope(FAILED, f"请求体未在 {exc.seconds:g} 秒内传完", http_status=408)
            if isinstance(exc, Unavailable) and exc.uncertain:
                response = envelope(
                    INTERNAL,
                    "提交时数据库连接中断，写入可能已保存也可能未保存，请先查询再重试",
                    http_status=503,
                )
            elif exc.rc == RC.SERVER_TOO_BUSY and exc.status != 429:
                response = envelope(INTERNAL, "数据库暂不可用，请稍后重试", http_status=503)
            else:
                response = envelope(FAILED, in_chinese(exc), http_status=exc.status or 200)
            if exc.retry_after is not None:
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status == 413:
                return envelope(FAILED, "请求体过大", http_status=413)
            reason = _HTTP_ZH.get(exc.status, "请求无法处理")
            return envelope(FAILED, f"{reason}（HTTP {exc.status}）", http_status=exc.status)
        except Exception:
            log.exception("unexpected error in %s %s", request.method, request.path)
            return envelope(INTERNAL, "服务器内部错误，操作可能未完成，请稍后查询后重试", http_status=500)

    return wrapper


async def json_body(request: web.Request, limit: int) -> Any:
    """The JSON body, refusing more than `limit` bytes whatever the transfer encoding (413)."""
    return parse_json(await read_body(request, limit))


def parse_json(raw: bytes) -> Any:
    """A body read with `read_body`, as JSON."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise HandleError(
            RC.PROTOCOL_ERROR, "the body is not valid JSON (UTF-8)", zh="请求体不是有效的 JSON（UTF-8）"
        ) from None
    check_json(raw, body)
    return body


async def caller(request: web.Request) -> Identity:
    """A bearer token of an enterprise user, or Basic credentials (Handle identity or user).

    Failures count against the failed-authentication limits of the client address (429 past them).
    """
    header = request.headers.get("Authorization", "")
    throttle = request.app[RATE_LIMITER].throttle(request)
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return await request.app[ACCOUNTS].from_token(credentials.strip(), throttle)
    if scheme.lower() == "handle":
        identity = await identity_of(request, required=True)
        assert identity is not None
        return identity
    if scheme.lower() == "basic":
        from resolver.services.authentication import parse_basic

        try:
            user, password = parse_basic(header)
        except HandleError:
            throttle.failed(None)
            raise
        if ":" in user or "/" in user:
            identity = await identity_of(request, required=True)
            assert identity is not None
            return identity
        return await request.app[ACCOUNTS].check_password(user, password, throttle)
    if header and " " not in header.strip():
        return await request.app[ACCOUNTS].from_token(header.strip(), throttle)
    if header:
        throttle.failed(None)
    raise HandleError(
        RC.AUTHENTICATION_NEEDED,
        "this needs credentials: an enterprise user's token from POST /identity/token as "
        "Authorization: Bearer <token>, or Basic with a user name and password or a Handle identity index:handle",
        zh="未登录：请先调用 /identity/token 获取令牌，并在 Authorization: Bearer 中携带",
    )


async def authenticated_body(
    request: web.Request, limit: int, authenticate: Callable[[web.Request], Awaitable[Identity]] = caller
) -> tuple[Identity, Any]:
    """The caller and the JSON body of a write: the (bounded) body is read first and the credentials
    checked after it arrived, so that a credential changed, disabled or revoked while a client
    trickles its body no longer writes. The credentials are still refused before a malformed body."""
    raw = await read_body(request, limit)
    identity = await authenticate(request)
    return identity, parse_json(raw)


async def node_admin(request: web.Request) -> Identity:
    """The caller, who must be the node administrator."""
    identity = await caller(request)
    if not request.app[REGISTRY].is_node_admin(identity):
        raise HandleError(
            RC.INSUFFICIENT_PERMISSIONS,
            "only the node administrator may do this",
            zh="仅节点管理员可以执行此操作",
        )
    return identity


def batch_limit(request: web.Request) -> int:
    return int(request.app[CONFIG].limits.max_batch_body_bytes)
