"""What every answer of the node gets on its way out, in one middleware: the request's id
(resolver/http/requestid.py), the client as a trusted proxy names it (forwarded.py) and the CORS
headers or the preflight's answer (cors.py).

The cached resolutions answered below aiohttp (fastpath.py) send the same headers themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from resolver.config import Config
from resolver.core import request_context
from resolver.core.errors import RC
from resolver.http import requestid
from resolver.http.cors import PUBLIC, PUBLIC_BYTES, CorsPolicy
from resolver.http.encoded import EncodedResponse
from resolver.http.errors import error_response, failure
from resolver.http.forwarded import TrustedProxies, apply

log = logging.getLogger(__name__)

# paths of the APIs that answer in the {status, message, data} envelope
_ENVELOPED = ("/admin/", "/identity/", "/identityv2/", "/snms/")


def _route(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def _refused(request: web.Request, origin: str) -> web.Response:
    """A preflight the policy refuses: 403 in the error shape of the path's API, no CORS header."""
    if request.path.startswith(_ENVELOPED):
        from resolver.http.envelope import FORBIDDEN, envelope

        return envelope(
            FORBIDDEN,
            f"跨域请求被拒绝：来源 {origin[:200]} 不能以这个方法或请求头访问本接口（允许的来源见 --cors-origins）",
            http_status=403,
        )
    return error_response(
        request,
        RC.INSUFFICIENT_PERMISSIONS,
        f"cross-origin request refused: pages of {origin[:200]} may not make this request "
        "(writes and authenticated requests only from the origins of --cors-origins)",
        403,
    )


def _mark(response: web.StreamResponse, rid: str, cors: Sequence[tuple[str, str]]) -> None:
    if type(response) is EncodedResponse:  # the resolution answers: header lines as bytes
        lines = (
            PUBLIC_BYTES
            if cors is PUBLIC
            else b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in cors)
        )
        response.extra = b"X-Request-Id: " + rid.encode() + b"\r\n" + lines
        return
    if response.prepared:
        return  # already sent (a streamed answer): nothing can be added
    headers = response.headers
    headers[requestid.HEADER] = rid
    for name, value in cors:
        if name == "Vary" and "Vary" in headers:
            headers["Vary"] = f"{headers['Vary']}, {value}"
        else:
            headers[name] = value


def edge(config: Config) -> Middleware:
    """The middleware of `config`'s CORS origins and trusted proxies."""
    policy = CorsPolicy(config.cors_origins)
    proxies = TrustedProxies(config.trusted_proxies)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = request.headers
        rid = requestid.of(headers.get(requestid.HEADER))
        requestid.current.set(rid)  # kept for the access log line written after the answer
        method = request.method
        origin = headers.get("Origin")
        route = _route(request)
        try:
            if proxies:
                request = apply(request, proxies)
            request_context.client_address.set(request.remote)  # for the audit
            if method == "OPTIONS" and origin is not None and "Access-Control-Request-Method" in headers:
                allowed = policy.preflight(
                    route,
                    origin,
                    headers["Access-Control-Request-Method"].strip().upper(),
                    headers.get("Access-Control-Request-Headers", ""),
                )
                response: web.StreamResponse
                if allowed is None:
                    response = _refused(request, origin)
                    _mark(response, rid, ())
                else:
                    response = web.Response(status=204)
                    _mark(response, rid, allowed)
                return response
            response = await handler(request)
        except web.HTTPException as exc:
            _mark(exc, rid, policy.headers(route, method, origin, "Authorization" in headers))
            raise
        except Exception as exc:
            response = failure(request, exc)  # logged there, with the request's id
        _mark(response, rid, policy.headers(route, method, origin, "Authorization" in headers))
        return response

    return middleware
