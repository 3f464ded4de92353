"""The operator API (node administrator only): enterprises, prefixes, users, credentials, audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from resolver.core.errors import RC, HandleError, in_chinese
from resolver.core.permissions import Identity
from resolver.http.envelope import FAILED, authenticated_body, envelope, enveloped, node_admin, ok
from resolver.http.keys import CONFIG, OPERATORS
from resolver.http.paging import page_and_size
from resolver.services import enterprise_keys

_MAX_ID = 2**63 - 1  # Postgres bigint


def _number(text: str | None, key: str) -> int:
    """A positive database id as ASCII digits (no signs, spaces, underscores or other scripts)."""
    if not text or not text.isascii() or not text.isdigit() or len(text) > 19 or not 0 < int(text) <= _MAX_ID:
        raise HandleError(RC.PROTOCOL_ERROR, f"{key} 必须是 1 到 {_MAX_ID} 之间的整数")
    return int(text)


def _id(request: web.Request, key: str) -> int:
    return _number(request.match_info[key], key)


async def _admin_body(request: web.Request) -> tuple[Identity, dict[str, Any]]:
    """The node administrator and the JSON object of a write (the body read before the credentials
    are checked, so that a credential changed while the body trickles in no longer writes)."""
    actor, body = await authenticated_body(
        request, int(request.app[CONFIG].limits.max_body_bytes), node_admin
    )
    if not isinstance(body, dict):
        raise HandleError(RC.PROTOCOL_ERROR, "请求体应为 JSON 对象")
    return actor, body


OPERATOR_PAGE_SIZE = 1000  # the largest page of enterprises or audit entries


def _paging(request: web.Request) -> tuple[int, int]:
    try:
        page, size = page_and_size(
            request.query, size_key="pageSize", default=50, smallest=1, largest=OPERATOR_PAGE_SIZE
        )
    except HandleError as exc:
        raise HandleError(RC.PROTOCOL_ERROR, f"分页参数不正确：{in_chinese(exc)}") from None
    return page, size


def _time(request: web.Request, key: str) -> datetime | None:
    text = request.query.get(key)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise HandleError(RC.PROTOCOL_ERROR, f"{key} 应为 ISO-8601 时间，例如 2026-11-21T08:00:00Z") from None


async def create_enterprise(request: web.Request) -> web.Response:
    actor, body = await _admin_body(request)
    return ok(await request.app[OPERATORS].register_enterprise(body, actor), "企业已登记")


async def list_enterprises(request: web.Request) -> web.Response:
    await node_admin(request)
    return ok(await request.app[OPERATORS].enterprises(*_paging(request)))


async def get_enterprise(request: web.Request) -> web.Response:
    await node_admin(request)
    return ok(await request.app[OPERATORS].enterprise(_id(request, "enterprise")))


async def allocate_prefix(request: web.Request) -> web.Response:
    actor, body = await _admin_body(request)
    result = await request.app[OPERATORS].allocate_prefix(_id(request, "enterprise"), body, actor)
    return ok(result, "前缀已分配，待审核")


async def set_prefix_state(request: web.Request) -> web.Response:
    actor, body = await _admin_body(request)
    change = await request.app[OPERATORS].set_prefix_state(request.match_info["prefix"], body, actor)
    data: dict[str, Any] = {"prefix": change.prefix, "state": change.state.value}
    if change.secret is not None:
        data["admin"] = {"identity": f"300:0.NA/{change.prefix}", "secret": change.secret}
    return ok(data, "状态已更新" + ("；管理员密钥只显示这一次，请妥善保存" if change.secret else ""))


async def set_prefix_signing(request: web.Request) -> web.Response:
    actor, body = await _admin_body(request)
    result = await request.app[OPERATORS].set_signing(request.match_info["prefix"], body, actor)
    if result["complete"] and result["refused"]:
        message = f"可信解析已开启；{result['refused']} 条标识的索引 400 被其他类型的标识值占用，未签名，请移走该值后再调用"
    elif result["complete"]:
        message = (
            "可信解析已开启，前缀下的标识均已签名" if result["signed"] else "可信解析已关闭，节点签名已移除"
        )
    else:
        message = "已处理一部分标识；请带上 after 再次调用以继续"
    return ok(result, message)


async def certify_enterprise_key(request: web.Request) -> web.Response:
    actor, body = await _admin_body(request)
    registry = request.app[OPERATORS].registry
    result, changed, chains = await enterprise_keys.certify(
        registry.store, registry.signing, request.match_info["prefix"], body, actor
    )
    registry.committed(changed, chains)
    return ok(result, "企业密钥已发布并由节点签发证书")


async def revoke_enterprise_key(request: web.Request) -> web.Response:
    actor = await node_admin(request)
    registry = request.app[OPERATORS].registry
    index = _number(request.match_info["index"], "index")
    registry.committed(
        await enterprise_keys.revoke(registry.store, request.match_info["prefix"], index, actor), []
    )
    return ok(None, "企业密钥及其证书已吊销")


async def rotate_credentials(request: web.Request) -> web.Response:
    actor, body = await _admin_body(request)
    prefix = request.match_info["prefix"]
    secret = await request.app[OPERATORS].rotate_credentials(prefix, body, actor)
    data: dict[str, Any] = {"identity": f"300:0.NA/{prefix}"}
    if secret is not None:
        data["secret"] = secret
    return ok(data, "管理员密钥已更换" + ("；新密钥只显示这一次" if secret else ""))


async def create_user(request: web.Request) -> web.Response:
    actor, body = await _admin_body(request)
    return ok(
        await request.app[OPERATORS].create_user(_id(request, "enterprise"), body, actor),
        "用户已创建",
    )


async def update_user(request: web.Request) -> web.Response:
    actor, body = await _admin_body(request)
    await request.app[OPERATORS].update_user(_id(request, "enterprise"), _id(request, "user"), body, actor)
    return ok(None, "用户已更新")


async def delete_user(request: web.Request) -> web.Response:
    actor = await node_admin(request)
    await request.app[OPERATORS].delete_user(_id(request, "enterprise"), _id(request, "user"), actor)
    return ok(None, "用户已删除，其令牌全部失效")


async def revoke_user_tokens(request: web.Request) -> web.Response:
    actor = await node_admin(request)
    await request.app[OPERATORS].revoke_tokens(_id(request, "enterprise"), _id(request, "user"), actor)
    return ok(None, "该用户的全部令牌已撤销，须用密码重新登录")


async def audit(request: web.Request) -> web.Response:
    await node_admin(request)
    enterprise = request.query.get("enterprise")
    enterprise_id = None if enterprise is None else _number(enterprise, "enterprise")
    page, size = _paging(request)
    trail = await request.app[OPERATORS].audit_trail(
        request.query.get("handle"), enterprise_id, _time(request, "from"), _time(request, "to"), page, size
    )
    return ok(trail)


def add_routes(app: web.Application) -> None:
    """Register the operator API routes under /admin/."""
    routes: list[tuple[str, dict[str, Any]]] = [
        ("/admin/enterprises", {"POST": create_enterprise, "GET": list_enterprises}),
        ("/admin/enterprises/{enterprise}", {"GET": get_enterprise}),
        ("/admin/enterprises/{enterprise}/prefixes", {"POST": allocate_prefix}),
        ("/admin/enterprises/{enterprise}/users", {"POST": create_user}),
        ("/admin/enterprises/{enterprise}/users/{user}", {"PUT": update_user, "DELETE": delete_user}),
        ("/admin/enterprises/{enterprise}/users/{user}/tokens", {"DELETE": revoke_user_tokens}),
        ("/admin/prefixes/{prefix}/state", {"PUT": set_prefix_state}),
        ("/admin/prefixes/{prefix}/credentials", {"POST": rotate_credentials}),
        ("/admin/prefixes/{prefix}/signing", {"PUT": set_prefix_signing}),
        ("/admin/prefixes/{prefix}/keys", {"POST": certify_enterprise_key}),
        ("/admin/prefixes/{prefix}/keys/{index}", {"DELETE": revoke_enterprise_key}),
        ("/admin/audit", {"GET": audit}),
    ]
    for path, methods in routes:
        resource = app.router.add_resource(path)
        for method, handler in methods.items():
            resource.add_route(method, enveloped(handler))
        allowed = ", ".join(methods)

        async def not_allowed(request: web.Request, allowed: str = allowed) -> web.Response:
            return envelope(FAILED, f"不支持的请求方法 {request.method}；请使用 {allowed}", http_status=405)

        resource.add_route("*", not_allowed)
