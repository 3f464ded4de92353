"""The portal's template page (issue 18): the data templates a prefix of the enterprise may use
(its own versions and the shared ones), a new version copied from a shared or own one or begun
from scratch, items added, items disabled and enabled again. Everything goes through the template
API's service (services/templates.TemplateRegistry: the prefix must be the enterprise's; versions
never change meaning, items are only added or switched), so its rules and messages are the page's."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from resolver.core.errors import RC, HandleError
from resolver.http.keys import TEMPLATES
from resolver.portal import pages
from resolver.portal.records import _message, _templates, _writable_prefixes

MAX_FORM = 64 * 1024


def routes() -> list[tuple[str, dict[str, Any]]]:
    return [("/portal/templates", {"GET": templates_page, "POST": change})]


async def templates_page(
    request: web.Request, prefix: str | None = None, error: str | None = None, status: int = 200
) -> web.StreamResponse:
    session = await pages._signed_in(request)
    if session is None:
        return pages._to_login(request)
    identity, token = session
    prefixes = await _writable_prefixes(request, identity)
    prefix = prefix if prefix is not None else request.query.get("prefix", "")
    if prefix not in prefixes:
        prefix = prefixes[0] if prefixes else ""
    context = {
        "title": pages._t(request, "数据模板", "Data templates"),
        "user": identity.text,
        "csrf": pages._session_csrf(token),
        "prefixes": prefixes,
        "prefix": prefix,
        "templates": await _templates(request, prefix) if prefix else [],
        "error": error,
    }
    return pages._page(request, "data_templates.html", context, status)


def _number(form: dict[str, str], key: str) -> int | None:
    raw = form.get(key, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) < 10):
        raise HandleError(RC.INVALID_VALUE, f"{key} must be a whole number", zh=f"{key} 必须是整数")
    return int(raw)


def _new_item(form: dict[str, str]) -> dict[str, Any]:
    """A template item as the template API takes it, from the form's fields."""
    metadata: dict[str, Any] = {"type": form.get("valueType", "string")}
    for key in ("minLength", "maxLength"):
        if (value := _number(form, key)) is not None:
            metadata[key] = value
    item: dict[str, Any] = {
        "name": form.get("name", ""),
        "idType": form.get("idType", ""),
        "idIndex": _number(form, "idIndex"),
        "required": form.get("required") == "1",
        "state": 1,
        "metadata": metadata,
    }
    if form.get("nameEn", "").strip():
        item["nameEn"] = form["nameEn"].strip()
    return item


async def change(request: web.Request) -> web.StreamResponse:
    posted = await pages.signed_form(request, MAX_FORM)
    if isinstance(posted, web.Response):
        return posted
    identity, _token, form = posted
    prefix, action = form.get("prefix", ""), form.get("action", "")
    service = request.app[TEMPLATES]
    try:
        if prefix not in await _writable_prefixes(request, identity):
            raise HandleError(
                RC.INSUFFICIENT_PERMISSIONS,
                f"{prefix} is not an enabled prefix of this enterprise",
                zh=f"{prefix} 不是本企业已启用的前缀",
            )
        available = {t.version: t for t in await _templates(request, prefix)}
        version = form.get("version", "").strip()
        if action == "create":
            base = available.get(form.get("base", ""))
            items = [i.to_json() for i in base.items] if base else [_new_item(form)]
            body: dict[str, Any] = {"prefix": prefix, "version": version, "items": items}
            if form.get("templateName", "").strip():
                body["templateName"] = form["templateName"].strip()
            await service.create(body, identity)
        elif action == "add":
            await service.update({"prefix": prefix, "version": version, "items": [_new_item(form)]}, identity)
        elif action in ("disable", "enable"):
            current = available.get(version)
            index = _number(form, "idIndex")
            item = (
                next((i for i in current.items if i.id_index == index), None)
                if current and current.prefix
                else None
            )
            if item is None:
                raise HandleError(
                    RC.HANDLE_NOT_FOUND,
                    "no such item of this prefix's template",
                    zh="本前缀的模板中没有该条目",
                )
            shown = {**item.to_json(), "state": 1 if action == "enable" else 0}
            await service.update({"prefix": prefix, "version": version, "items": [shown]}, identity)
        else:
            raise HandleError(RC.INVALID_VALUE, "unknown action", zh="未知的操作")
    except HandleError as exc:
        if exc.rc in (RC.SERVER_TOO_BUSY,):
            raise
        status = (
            403
            if exc.rc == RC.INSUFFICIENT_PERMISSIONS
            else 409
            if exc.rc == RC.HANDLE_ALREADY_EXISTS
            else 400
        )
        return await templates_page(request, prefix, _message(request, exc), status)
    return pages._see_other(f"/portal/templates?prefix={quote(prefix)}")
