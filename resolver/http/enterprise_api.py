"""The enterprise API of deployed secondary nodes (SNMS v5 de facto): tokens, identifiers one at
a time and in batches, templates. Messages are in Chinese."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from resolver.core.errors import RC, HandleError
from resolver.core.handles import parse_handle
from resolver.core.permissions import Identity
from resolver.core.templates import TEMPLATE_INDEX, template_version_of
from resolver.http.envelope import (
    FAILED,
    authenticated_body,
    batch_limit,
    caller,
    envelope,
    enveloped,
    json_body,
    ok,
)
from resolver.http.keys import ACCOUNTS, BATCHES, CONFIG, DAILY, METRICS, RATE_LIMITER, REGISTRY, TEMPLATES
from resolver.services.batches import OK as ITEM_OK
from resolver.services.batches import ItemResult, count_new


def _small_limit(request: web.Request) -> int:
    return int(request.app[CONFIG].limits.max_body_bytes)


async def token(request: web.Request) -> web.Response:
    """POST /identity/token {username, password} -> a bearer token valid for a day."""
    body = await json_body(request, _small_limit(request))
    if not isinstance(body, dict):
        raise HandleError(RC.PROTOCOL_ERROR, "请求体应为 {username, password}")
    username = body.get("username", body.get("userName"))
    password = body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise HandleError(RC.PROTOCOL_ERROR, "请提供用户名 username 和密码 password")
    throttle = request.app[RATE_LIMITER].throttle(request)
    issued, expires = await request.app[ACCOUNTS].login(username, password, throttle)
    ttl = int(request.app[CONFIG].token_ttl)
    return ok(
        {"token": issued, "tokenType": "Bearer", "expiresIn": ttl, "expiresAt": int(expires)}, "登录成功"
    )


async def logout(request: web.Request) -> web.Response:
    """POST /identity/logout with the token in Authorization: that token ends at once on every
    worker (the user's other tokens stay valid). Logging out a token that is void already succeeds."""
    header = request.headers.get("Authorization", "").strip()
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        presented = credentials.strip()
    elif header and " " not in header:
        presented = header
    elif header:
        raise HandleError(RC.PROTOCOL_ERROR, "退出登录须携带要结束的令牌：Authorization: Bearer <令牌>")
    else:
        raise HandleError(RC.AUTHENTICATION_NEEDED, "未登录：请在 Authorization: Bearer 中携带要结束的令牌")
    throttle = request.app[RATE_LIMITER].throttle(request)
    ended = await request.app[ACCOUNTS].logout(presented, throttle)
    return ok(None, "已退出登录，该令牌已失效" if ended else "该令牌已失效，无需再退出")


def _count_new(request: web.Request, results: list[ItemResult]) -> None:
    count_new(request.app[DAILY], results)


def _single(result: ItemResult) -> web.Response:
    if result.code == ITEM_OK:
        return ok({"handle": result.handle}, result.msg)
    return envelope(FAILED, result.msg, {"handle": result.handle})


async def create_one(request: web.Request) -> web.Response:
    """POST /identityv2/data: register one identifier."""
    identity, body = await authenticated_body(request, _small_limit(request))
    batches = request.app[BATCHES]
    (result,) = await batches.create(identity, batches.parse_items([body]))
    request.app[METRICS].registered("enterprise", "single", [result.code == ITEM_OK])
    _count_new(request, [result])
    return _single(result)


async def update_one(request: web.Request) -> web.Response:
    """PUT /identityv2/data: change one identifier's values."""
    identity, body = await authenticated_body(request, _small_limit(request))
    batches = request.app[BATCHES]
    (result,) = await batches.update(identity, batches.parse_items([body]))
    return _single(result)


async def delete_one(request: web.Request) -> web.Response:
    """DELETE /identityv2/data {"handle": ...}: delete one identifier."""
    identity, body = await authenticated_body(request, _small_limit(request))
    handle = body.get("handle") if isinstance(body, dict) else None
    if not isinstance(handle, str):
        raise HandleError(RC.PROTOCOL_ERROR, '请求体应为 {"handle": "前缀/后缀"}')
    (result,) = await request.app[BATCHES].delete(identity, [handle])
    return _single(result)


async def detail(request: web.Request) -> web.Response:
    """GET /identityv2/data/detail?handle=: an identifier with its values."""
    identity = await caller(request)
    sent = request.query.get("handle")
    if not sent:
        raise HandleError(RC.PROTOCOL_ERROR, "请提供查询参数 handle")
    registry = request.app[REGISTRY]
    name = parse_handle(sent, registry.limits)
    record = await registry.read(name, fresh=True)
    values = await registry.readable_values(name, record, identity)
    data = {
        "prefix": record.handle.partition("/")[0],
        "handle": record.handle,
        "templateVersion": template_version_of(record.values),
        "value": [v for v in values if v["index"] != TEMPLATE_INDEX],
    }
    return ok(data)


def _batch_answer(results: list[ItemResult]) -> web.Response:
    failed = sum(1 for r in results if r.code != ITEM_OK)
    message = f"共 {len(results)} 条：成功 {len(results) - failed} 条，失败 {failed} 条"
    return ok([r.to_json() for r in results], message)


async def _batch_items(request: web.Request) -> tuple[Identity, list[Any]]:
    """The caller and the items of a batch (the body is read before the credentials are checked)."""
    identity, body = await authenticated_body(request, batch_limit(request))
    if isinstance(body, dict):
        body = body.get("data", body.get("items"))
    if not isinstance(body, list):
        raise HandleError(RC.PROTOCOL_ERROR, "批量请求体应为数组")
    request.app[METRICS].batch_sizes.append((request.path.rsplit("/", 1)[-1], len(body)))
    limit = request.app[CONFIG].max_batch_items
    if len(body) > limit:
        raise HandleError(RC.PROTOCOL_ERROR, f"一次最多 {limit} 条，本次 {len(body)} 条；请分批提交")
    if not body:
        raise HandleError(RC.PROTOCOL_ERROR, "批量请求为空")
    return identity, body


async def batch_create(request: web.Request) -> web.Response:
    """POST /identityv2/data/batchCreate: up to 2000 identifiers, a result each."""
    identity, items = await _batch_items(request)
    batches = request.app[BATCHES]
    results = await batches.create(identity, batches.parse_items(items))
    request.app[METRICS].registered("enterprise", "batch", [r.code == ITEM_OK for r in results])
    _count_new(request, results)
    return _batch_answer(results)


async def batch_update(request: web.Request) -> web.Response:
    """PUT /identityv2/data/batchUpdate."""
    identity, items = await _batch_items(request)
    batches = request.app[BATCHES]
    return _batch_answer(await batches.update(identity, batches.parse_items(items)))


async def batch_delete(request: web.Request) -> web.Response:
    """DELETE /identityv2/data/batchDelete ["h1", "h2", ...]."""
    identity, items = await _batch_items(request)
    return _batch_answer(await request.app[BATCHES].delete(identity, items))


async def templates_get(request: web.Request) -> web.Response:
    """GET /snms/api/v5/template?prefix=&version=: the templates a prefix may use."""
    identity = await caller(request)
    found = await request.app[TEMPLATES].list(
        request.query.get("prefix"), request.query.get("version"), identity
    )
    return ok(found)


async def templates_post(request: web.Request) -> web.Response:
    """POST /snms/api/v5/template: define a template version."""
    identity, body = await authenticated_body(request, _small_limit(request))
    template = await request.app[TEMPLATES].create(body, identity)
    return ok(template.to_json(), "模板已创建")


async def templates_put(request: web.Request) -> web.Response:
    """PUT /snms/api/v5/template: add items or enable/disable items of a version."""
    identity, body = await authenticated_body(request, _small_limit(request))
    template = await request.app[TEMPLATES].update(body, identity)
    return ok(template.to_json(), "模板已更新")


async def templates_delete(request: web.Request) -> web.Response:
    """DELETE /snms/api/v5/template: templates are never deleted."""
    await caller(request)
    raise HandleError(
        RC.PROTOCOL_ERROR, "模板不能删除：已登记的标识引用着它。请停用不再使用的条目（PUT，state 为 0）"
    )


def add_routes(app: web.Application) -> None:
    """Register the enterprise API routes."""
    routes: list[tuple[str, dict[str, Any]]] = [
        ("/identity/token", {"POST": token}),
        ("/identity/logout", {"POST": logout}),
        ("/identityv2/data", {"POST": create_one, "PUT": update_one, "DELETE": delete_one}),
        ("/identityv2/data/detail", {"GET": detail}),
        ("/identityv2/data/batchCreate", {"POST": batch_create}),
        ("/identityv2/data/batchUpdate", {"PUT": batch_update}),
        ("/identityv2/data/batchDelete", {"DELETE": batch_delete}),
        (
            "/snms/api/v5/template",
            {"GET": templates_get, "POST": templates_post, "PUT": templates_put, "DELETE": templates_delete},
        ),
    ]
    for path, methods in routes:
        resource = app.router.add_resource(path)
        for method, handler in methods.items():
            resource.add_route(method, enveloped(handler))
        resource.add_route("*", enveloped(_not_allowed(", ".join(methods))))


def _not_allowed(allowed: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return envelope(FAILED, f"不支持的请求方法 {request.method}；请使用 {allowed}", http_status=405)

    return handler
