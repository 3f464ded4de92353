"""The web proxy face, as hdl.handle.net behaves: `/{handle}` redirects to the handle's URL.

`?noredirect` shows the public values as a page; `?urlappend=` is added to the target; unknown
handles get a 404 page. This is where a browser lands when someone scans a product code.
"""

from __future__ import annotations

import html
import time
from email.utils import formatdate
from urllib.parse import unquote

from aiohttp import web

from resolver.cache import Entry
from resolver.core.errors import RC, HandleError
from resolver.core.handles import HandleName, parse_handle
from resolver.core.values import StoredValue, first_url, is_public, select
from resolver.http.errors import method_not_allowed, timed
from resolver.http.handles import flag, indexes_of
from resolver.http.keys import CONFIG, DAILY, RATE_LIMITER, REGISTRY
from resolver.http.scan import product_page, qr_png, qr_svg, wants_qr
from resolver.registry import Registry
from resolver.store.db import Record

# Schemes a redirect must never lead a browser to.
_UNSAFE_SCHEMES = frozenset({"javascript", "data", "vbscript", "file"})
_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:.4rem;text-align:left;vertical-align:top}}
th{{background:#f4f4f4}}code{{word-break:break-all}}</style></head>
<body>{body}</body></html>
"""


def page(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """An HTML page; `title` is escaped here, `body` must already be escaped."""
    return web.Response(
        text=_PAGE.format(title=html.escape(title), body=body),
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=headers,
    )


def _value_cell(value: StoredValue) -> str:
    data = value["data"]
    shown = data["value"] if isinstance(data["value"], str) else repr(data["value"])
    text = html.escape(shown)
    if (
        value["type"].upper().startswith("URL")
        and isinstance(data["value"], str)
        and data["value"].startswith(("http://", "https://"))
    ):
        return f'<a href="{html.escape(data["value"], quote=True)}" rel="nofollow noopener">{text}</a>'
    return f"<code>{text}</code>"


def values_page(handle: str, values: list[StoredValue]) -> web.Response:
    """The readable page of a handle's public values (Chinese and English)."""
    rows = "".join(
        f"<tr><td>{v['index']}</td><td>{html.escape(v['type'])}</td><td>{_value_cell(v)}</td>"
        f"<td>{html.escape(str(v['timestamp']))}</td></tr>"
        for v in values
    )
    body = (
        f"<h1>标识 Identifier: <code>{html.escape(handle)}</code></h1>"
        "<table><tr><th>索引 Index</th><th>类型 Type</th><th>数据 Data</th><th>时间 Timestamp</th></tr>"
        f"{rows}</table>"
    )
    return page(handle, body)


def not_found_page(handle: str, message: str, status: int) -> web.Response:
    body = (
        f"<h1>未找到标识 / Identifier not found</h1><p><code>{html.escape(handle)}</code></p>"
        f"<p>{html.escape(message)}</p>"
    )
    return page(handle, body, status=status)


def _page_url(request: web.Request, handle: str) -> str:
    """Where this identifier's page is: under --public-url, or the host the request named."""
    base = request.app[CONFIG].public_url or f"{request.scheme}://{request.host}"
    return f"{base.rstrip('/')}/{handle}"


async def _lookup(registry: Registry, name: HandleName, fresh: bool) -> tuple[Entry | None, Record]:
    if fresh:
        return None, await registry.read(name, fresh=True)
    entry = await registry.entry(name)
    assert entry.record is not None
    return entry, entry.record


async def proxy(request: web.Request) -> web.StreamResponse:
    """GET/HEAD /{handle}: redirect to the handle's first URL, or show its product page, or its QR code."""
    config = request.app[CONFIG]
    registry = request.app[REGISTRY]
    raw = request.rel_url.raw_path[1:]
    try:
        sent = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return not_found_page(raw, "the identifier is not valid UTF-8 / 标识不是有效的 UTF-8", 400)
    query = request.query
    qr = wants_qr(query)
    if qr is None and sent.endswith(".png") and "/" in sent[:-4]:
        sent, qr = sent[:-4], "png"
    try:
        request.app[RATE_LIMITER].check(request, resolution=True)
        name = parse_handle(sent, config.limits)
        try:
            entry, record = await _lookup(registry, name, flag(query, "auth", False))
        except HandleError as exc:
            if exc.rc == RC.HANDLE_NOT_FOUND:
                request.app[DAILY].not_found(name.prefix)
            raise
        request.app[DAILY].resolved(name.prefix)
        public = [v for v in record.values if is_public(v)]
        values = select(public, indexes_of(query, config.limits.max_index), query.getall("type", []))
        noredirect = flag(query, "noredirect", False)
    except HandleError as exc:
        if exc.rc == RC.HANDLE_NOT_FOUND:
            return not_found_page(sent, "该标识未注册 / This identifier is not registered.", 404)
        if exc.rc == RC.SERVER_TOO_BUSY:
            status = exc.status or 503
            retry = str(exc.retry_after or 2)
            return page(
                str(status),
                "<h1>服务繁忙，请稍后再试 / Service busy, try again later</h1>",
                status,
                {"Retry-After": retry},
            )
        return not_found_page(sent, exc.message, 400)
    if qr is not None:
        page_url = _page_url(request, record.handle)
        return web.Response(
            body=qr_png(page_url) if qr == "png" else qr_svg(page_url),
            content_type="image/png" if qr == "png" else "image/svg+xml",
            headers={"Cache-Control": "public, max-age=86400"},
        )
    target = None if noredirect else first_url(values)
    if target is None:
        if len(values) != len(public):  # filtered: the plain table of the chosen values
            return values_page(record.handle, values)
        rendered = entry.page if entry is not None else None
        if rendered is None:
            page_url = _page_url(request, record.handle)
            rendered = await product_page(registry, name, public, page_url, config.node_prefix)
            if entry is not None:
                entry.page = rendered
        return web.Response(
            body=rendered,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "public, max-age=60"},
        )
    url, ttl = target
    url += query.get("urlappend", "")
    scheme, colon, _ = url.partition(":")
    if colon and "/" not in scheme and scheme.strip().lower() in _UNSAFE_SCHEMES:
        return values_page(record.handle, values)
    link = html.escape(url, quote=True)
    response = web.Response(
        status=302,
        text=f'<html><body><a href="{link}">{link}</a></body></html>',
        content_type="text/html",
        charset="utf-8",
    )
    response.headers["Location"] = url
    response.headers["Expires"] = formatdate(time.time() + ttl, usegmt=True)
    return response


async def home(request: web.Request) -> web.Response:
    """The root page: what this node is."""
    prefix = html.escape(request.app[CONFIG].node_prefix)
    body = (
        f"<h1>工业互联网标识解析二级节点 {prefix}</h1>"
        f"<p>Secondary node {prefix} of the industrial internet identifier resolution system.</p>"
        f"<p>扫码或访问 <code>/{prefix}.xx/标识后缀</code> 查看标识 / Resolve an identifier at "
        f"<code>/{prefix}.xx/suffix</code>, or use the Handle API at <code>/api/handles/</code>.</p>"
    )
    return page(f"Node {request.app[CONFIG].node_prefix}", body)


def add_routes(app: web.Application) -> None:
    """Register the web proxy routes (after every other route)."""
    app.router.add_get("/", home)
    resource = app.router.add_resource("/{handle:.+}")
    resource.add_route("GET", timed(proxy))
    resource.add_route("HEAD", timed(proxy))
    resource.add_route("*", method_not_allowed("GET, HEAD"))
