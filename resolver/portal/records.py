"""The portal's identifier pages (issue 18): register one through a form made from a template,
view one, change it, delete it after a confirmation.

Every write goes through the enterprise API's own service (services/batches.py: ownership, the
prefix's state, the template, signing, the audit trail), so a page can do exactly what the
enterprise's token could do over the API and nothing more. Before writing, each field is checked
with the template's own rule (`check_text`, `missing_required`) so its message can stand next to
the field; the service checks everything again when it writes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote

from aiohttp import web

from resolver.core.enterprises import PrefixState
from resolver.core.errors import RC, HandleError, in_chinese
from resolver.core.handles import HandleName, fold, parse_handle
from resolver.core.permissions import Identity
from resolver.core.templates import (
    SHARED,
    TEMPLATE_INDEX,
    Template,
    TemplateItem,
    check_text,
    missing_required,
    template_version_of,
)
from resolver.http.keys import BATCHES, DAILY, METRICS, REGISTRY, STORE
from resolver.portal import pages
from resolver.services.batches import OK as ITEM_OK
from resolver.services.batches import count_new
from resolver.store import enterprises as db
from resolver.store import templates as template_store
from resolver.store.rows import Record

# a template's fields, the handle, the template and the token: well within these
MAX_FORM = 256 * 1024
MAX_FIELDS = 320
WRITABLE = (PrefixState.ENABLED,)


def routes() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("/portal/new", {"GET": new_page, "POST": new}),
        ("/portal/record", {"GET": record_page}),
        ("/portal/edit", {"GET": edit_page, "POST": edit}),
        ("/portal/delete", {"GET": delete_page, "POST": delete}),
    ]


def refused(message: str, zh: str) -> HandleError:
    """A 403 page: not this enterprise's to see or change."""
    exc = HandleError(RC.INSUFFICIENT_PERMISSIONS, message, zh=zh)
    exc.status = 403
    return exc


def _message(request: web.Request, exc: HandleError) -> str:
    return in_chinese(exc) if pages._lang(request) == "zh" else exc.message


async def _templates(request: web.Request, prefix: str) -> list[Template]:
    """The template versions a prefix may use: its own, then the shared ones it does not shadow."""
    found = await template_store.templates_of(request.app[STORE], [SHARED, fold(prefix)])
    own = {t.version for t in found if t.prefix}
    return [t for t in found if t.prefix or t.version not in own]


def _fields(template: Template) -> list[TemplateItem]:
    return [item for item in template.items if item.enabled]


def _check_fields(
    request: web.Request,
    template: Template,
    typed: dict[int, str],
    current: set[int] = frozenset(),  # type: ignore[assignment]
) -> dict[int, str]:
    """Each field's message under the template's own rules: a value that does not fit, a
    required one missing, a registered one cleared (`current`: indexes holding a value now)."""
    errors: dict[int, str] = {}
    for item in _fields(template):
        text = typed.get(item.id_index, "")
        try:
            if text:
                check_text(item, text)
            elif item.id_index in current:
                raise HandleError(
                    RC.INVALID_VALUE,
                    "a registered value cannot be cleared here; change it instead",
                    zh="已登记的值不能在此清空，可以修改为新值",
                )
            elif item.required:
                missing_required(replace(template, items=(item,)), set())
        except HandleError as exc:
            errors[item.id_index] = _message(request, exc)
    return errors


def _typed(form: dict[str, str], template: Template) -> dict[int, str]:
    return {item.id_index: form.get(f"v{item.id_index}", "").strip() for item in _fields(template)}


def _item(handle: str, template: Template, typed: dict[int, str]) -> dict[str, Any]:
    """The enterprise API item the form stands for."""
    values = [
        {"index": item.id_index, "type": item.id_type, "data": {"format": "string", "value": text}}
        for item in _fields(template)
        if (text := typed.get(item.id_index))
    ]
    return {"handle": handle, "templateVersion": template.version, "value": values}


async def _writable_prefixes(request: web.Request, identity: Identity) -> list[str]:
    assert identity.enterprise_id is not None
    rows = await db.prefixes_of(request.app[STORE], identity.enterprise_id)
    return [p.display for p in rows if p.state in WRITABLE]


def _form_page(
    request: web.Request,
    token: str,
    identity: Identity,
    *,
    mode: str,
    prefixes: list[str],
    prefix: str,
    templates: list[Template],
    template: Template | None,
    suffix: str = "",
    typed: dict[int, str] | None = None,
    errors: dict[Any, str] | None = None,
    status: int = 200,
) -> web.Response:
    title = {"new": pages._t(request, "登记标识", "Register an identifier")}.get(
        mode, pages._t(request, "修改标识", "Change an identifier")
    )
    context = {
        "title": title,
        "user": identity.text,
        "csrf": pages._session_csrf(token),
        "mode": mode,
        "prefixes": prefixes,
        "prefix": prefix,
        "templates": templates,
        "template": template,
        "fields": _fields(template) if template else [],
        "suffix": suffix,
        "typed": typed or {},
        "errors": errors or {},
    }
    return pages._page(request, "record_form.html", context, status)


def _pick(templates: list[Template], version: str) -> Template | None:
    return next((t for t in templates if t.version == version), templates[0] if templates else None)


async def new_page(request: web.Request) -> web.StreamResponse:
    session = await pages._signed_in(request)
    if session is None:
        return pages._to_login(request)
    identity, token = session
    prefixes = await _writable_prefixes(request, identity)
    prefix = request.query.get("prefix", "")
    if prefix not in prefixes:
        prefix = prefixes[0] if prefixes else ""
    templates = await _templates(request, prefix) if prefix else []
    template = _pick(templates, request.query.get("template", ""))
    return _form_page(
        request,
        token,
        identity,
        mode="new",
        prefixes=prefixes,
        prefix=prefix,
        templates=templates,
        template=template,
    )


async def new(request: web.Request) -> web.StreamResponse:
    posted = await pages.signed_form(request, MAX_FORM, MAX_FIELDS)
    if isinstance(posted, web.Response):
        return posted
    identity, token, form = posted
    prefixes = await _writable_prefixes(request, identity)
    prefix, suffix = form.get("prefix", ""), form.get("suffix", "").strip()
    if prefix not in prefixes:
        raise HandleError(
            RC.INSUFFICIENT_PERMISSIONS,
            f"prefix {prefix} is not an enabled prefix of this enterprise",
            zh=f"前缀 {prefix} 不是本企业已启用的前缀",
        )
    templates = await _templates(request, prefix)
    template = next((t for t in templates if t.version == form.get("template")), None)
    if template is None:
        raise HandleError(RC.INVALID_VALUE, "choose a template", zh="请选择模板")
    typed = _typed(form, template)
    errors: dict[Any, str] = dict(_check_fields(request, template, typed))
    handle = f"{prefix}/{suffix}"
    try:
        if not suffix:
            raise HandleError(RC.INVALID_VALUE, "enter the suffix", zh="请填写标识后缀")
        parse_handle(handle, request.app[REGISTRY].limits)
    except HandleError as exc:
        errors["suffix"] = _message(request, exc)
    if not errors:
        batches = request.app[BATCHES]
        (result,) = await batches.create(identity, batches.parse_items([_item(handle, template, typed)]))
        request.app[METRICS].registered("portal", "single", [result.code == ITEM_OK])
        if result.code == ITEM_OK:
            count_new(request.app[DAILY], [result])
            return pages._see_other(f"/portal/record?handle={quote(handle, safe='/')}&done=created")
        errors["top"] = result.msg
    return _form_page(
        request,
        token,
        identity,
        mode="new",
        prefixes=prefixes,
        prefix=prefix,
        templates=templates,
        template=template,
        suffix=suffix,
        typed=typed,
        errors=errors,
        status=400,
    )


async def _own_record(request: web.Request, identity: Identity, sent: str) -> tuple[HandleName, Record]:
    """An identifier of the signed-in enterprise, or a refusal that says no more than the public
    resolution would (another enterprise's identifiers are not this portal's to show)."""
    registry = request.app[REGISTRY]
    name = parse_handle(sent, registry.limits)
    registry.check_responsible(name)
    owner = await registry.owner_of(name)
    if owner is None or owner.enterprise_id != identity.enterprise_id or name.is_prefix_handle:
        raise refused(f"{sent} is not an identifier of this enterprise", f"{sent} 不是本企业的标识")
    return name, await registry.read(name, fresh=True)


async def record_page(request: web.Request) -> web.StreamResponse:
    session = await pages._signed_in(request)
    if session is None:
        return pages._to_login(request)
    identity, token = session
    name, record = await _own_record(request, identity, request.query.get("handle", ""))
    values = await request.app[REGISTRY].readable_values(name, record, identity)
    shown = [v for v in values if v["index"] != TEMPLATE_INDEX and not fold(v["type"]).startswith("hs_")]
    context = {
        "title": record.handle,
        "user": identity.text,
        "csrf": pages._session_csrf(token),
        "handle": record.handle,
        "quoted": quote(record.handle, safe="/"),
        "version": template_version_of(record.values),
        "values": shown,
        "done": request.query.get("done", ""),
    }
    return pages._page(request, "record.html", context)


async def _editing(
    request: web.Request, identity: Identity, sent: str
) -> tuple[HandleName, Record, list[Template], Template]:
    name, record = await _own_record(request, identity, sent)
    templates = await _templates(request, name.prefix)
    version = template_version_of(record.values)
    template = next((t for t in templates if t.version == version), None)
    if template is None:
        raise HandleError(
            RC.INVALID_VALUE,
            "this identifier names no template; change it through the API",
            zh="该标识未引用模板，请通过接口修改",
        )
    return name, record, templates, template


def _current(record: Record) -> dict[int, str]:
    return {
        v["index"]: v["data"]["value"]
        for v in record.values
        if v["data"].get("format") == "string" and isinstance(v["data"].get("value"), str)
    }


async def edit_page(request: web.Request) -> web.StreamResponse:
    session = await pages._signed_in(request)
    if session is None:
        return pages._to_login(request)
    identity, token = session
    name, record, templates, template = await _editing(request, identity, request.query.get("handle", ""))
    return _form_page(
        request,
        token,
        identity,
        mode="edit",
        prefixes=[name.prefix],
        prefix=record.handle,
        templates=templates,
        template=template,
        typed=_current(record),
    )


async def edit(request: web.Request) -> web.StreamResponse:
    posted = await pages.signed_form(request, MAX_FORM, MAX_FIELDS)
    if isinstance(posted, web.Response):
        return posted
    identity, token, form = posted
    name, record, templates, template = await _editing(request, identity, form.get("handle", ""))
    typed = _typed(form, template)
    current = _current(record)
    errors: dict[Any, str] = dict(_check_fields(request, template, typed, {i for i in current if i in typed}))
    if not errors:
        batches = request.app[BATCHES]
        (result,) = await batches.update(
            identity, batches.parse_items([_item(record.handle, template, typed)])
        )
        if result.code == ITEM_OK:
            return pages._see_other(f"/portal/record?handle={quote(record.handle, safe='/')}&done=changed")
        errors["top"] = result.msg
    return _form_page(
        request,
        token,
        identity,
        mode="edit",
        prefixes=[name.prefix],
        prefix=record.handle,
        templates=templates,
        template=template,
        typed=typed,
        errors=errors,
        status=400,
    )


async def delete_page(request: web.Request) -> web.StreamResponse:
    session = await pages._signed_in(request)
    if session is None:
        return pages._to_login(request)
    identity, token = session
    _name, record = await _own_record(request, identity, request.query.get("handle", ""))
    context = {
        "title": pages._t(request, "删除标识", "Delete an identifier"),
        "user": identity.text,
        "csrf": pages._session_csrf(token),
        "handle": record.handle,
    }
    return pages._page(request, "record_delete.html", context)


async def delete(request: web.Request) -> web.StreamResponse:
    posted = await pages.signed_form(request)
    if isinstance(posted, web.Response):
        return posted
    identity, _token, form = posted
    _name, record = await _own_record(request, identity, form.get("handle", ""))
    (result,) = await request.app[BATCHES].delete(identity, [record.handle])
    if result.code != ITEM_OK:
        raise refused(result.msg, result.msg)
    message = pages._t(request, f"已删除 {record.handle}", f"Deleted {record.handle}")
    return pages._page(request, "message.html", {"message": message, "back": "/portal/"})
