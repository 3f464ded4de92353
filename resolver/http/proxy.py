"""The web proxy face, as hdl.handle.net behaves: `/{handle}` redirects to the handle's URL.

`?noredirect` shows the public values as a page; `?urlappend=` is added to the target (a path, a
query or a fragment, never another site); unknown handles get a 404 page. This is where a browser
lands when someone scans a product code.
"""

from __future__ import annotations

import html
import time
from email.utils import formatdate
from urllib.parse import unquote

from aiohttp import web

from resolver.cache import Entry
from resolver.core.errors import RC, HandleError, in_chinese
from resolver.core.handles import HandleName, has_control_characters, parse_handle
from resolver.core.values import StoredValue, first_url, is_public, select
from resolver.http.errors import timed
from resolver.http.forwarded import link_base
from resolver.http.handles import flag, indexes_of
from resolver.http.keys import CONFIG, DAILY, MISSING_OWNERS, RATE_LIMITER, REGISTRY
from resolver.http.scan import (
    STYLE,
    WEB_URL,
    MissingOwners,
    invalid_page,
    missing_page,
    page_language,
    page_url,
    product_page,
    qr_png,
    qr_svg,
    wants_qr,
    web_link,
)
from resolver.services.registry import Registry
from resolver.store.rows import Record

_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style></head>
<body><main><section>{body}</section></main></body></html>
"""


def page(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """An HTML page; `title` is escaped here, `body` must already be escaped."""
    return web.Response(
        text=_PAGE.format(title=html.escape(title), style=STYLE, body=body),
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=headers,
    )


def _value_cell(value: StoredValue) -> str:
    data = value["data"]["value"]
    if isinstance(data, str) and value["type"].upper().startswith("URL"):
        link = web_link(data)
        if link is not None:
            return link
    return f"<code>{html.escape(data if isinstance(data, str) else repr(data))}</code>"


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


def html_page(body: bytes, status: int) -> web.Response:
    return web.Response(body=body, status=status, content_type="text/html", charset="utf-8")


async def not_found_page(request: web.Request, name: HandleName, handle: str) -> web.Response:
    """404 in the scan page's style: whom to ask is the enterprise holding the prefix, if any
    (remembered per prefix for a few seconds: scan.MissingOwners)."""
    config, registry = request.app[CONFIG], request.app[REGISTRY]
    prefix, enterprise = await request.app[MISSING_OWNERS].enterprise_of(registry, name)
    page_bytes = missing_page(
        handle, enterprise, prefix or name.prefix, config.node_prefix, page_language(request.query)
    )
    return html_page(page_bytes, 404)


def invalid_handle_page(request: web.Request, handle: str, zh: str, en: str) -> web.Response:
    node_prefix = request.app[CONFIG].node_prefix
    return html_page(invalid_page(handle, zh, en, node_prefix, page_language(request.query)), 400)


def refused_page(handle: str, reason: str) -> web.Response:
    """400: the redirect this request asks for is not sent (`reason` is bilingual, unescaped)."""
    body = (
        f"<h1>无法跳转 / Not redirected</h1><p><code>{html.escape(handle)}</code></p>"
        f"<p>{html.escape(reason)}</p>"
        '<p><a href="?noredirect">查看标识数据 / Show the identifier\'s values</a></p>'
    )
    return page(handle, body, status=400)


class RedirectRefused(Exception):
    """The redirect is not sent; the message says why (Chinese and English)."""


def redirect_target(url: str, urlappend: str) -> str | None:
    """The Location of a redirect to the stored `url` with `urlappend` added, or None when `url`
    is not one to send a browser to (then the identifier's values are shown instead).

    Only absolute http and https URLs are redirected to: a browser hands any other scheme to
    whatever the system has registered for it (javascript:, data:, file:, but also mail, phone,
    app links, ms-msdt: ...), and a list of the bad ones is never complete.
    `urlappend` adds a path, a query or a fragment, never a scheme, user, host or port: after a
    URL that ends with its host or port it must begin with '/', '?' or '#'; after one that has a
    path, query or fragment anything is added to that. The reference proxy appends it blindly.
    Raises RedirectRefused when `url` or `urlappend` holds a control character (CR and LF would
    split the response's headers) or when `urlappend` would begin a new site.
    """
    if has_control_characters(url):
        raise RedirectRefused(
            "该标识的 URL 值含控制字符 / The identifier's URL value contains control characters"
        )
    url = url.strip(" ")
    web_url = WEB_URL.fullmatch(url)
    if web_url is None:
        return None
    if not urlappend:
        return url
    if has_control_characters(urlappend):
        raise RedirectRefused("urlappend 含控制字符 / urlappend contains control characters")
    if web_url["rest"] is None and urlappend[0] not in "/?#":
        raise RedirectRefused(
            "urlappend 只能添加路径、查询或片段，不能改变网站 / "
            "urlappend may add a path, a query or a fragment, never change the site"
        )
    return url + urlappend


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
        return invalid_handle_page(request, raw, "标识不是有效的 UTF-8", "The identifier is not valid UTF-8")
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
            return await not_found_page(request, name, sent)
        if exc.rc == RC.SERVER_TOO_BUSY:
            status = exc.status or 503
            retry = str(exc.retry_after or 2)
            return page(
                str(status),
                "<h1>服务繁忙，请稍后再试 / Service busy, try again later</h1>",
                status,
                {"Retry-After": retry},
            )
        return invalid_handle_page(request, sent, in_chinese(exc), exc.message)
    base = link_base(config, request)  # --public-url, or a trusted proxy's scheme and host
    if qr is not None:
        address = page_url(config, record.handle, base)
        return web.Response(
            body=qr_png(address) if qr == "png" else qr_svg(address),
            content_type="image/png" if qr == "png" else "image/svg+xml",
            headers={"Cache-Control": "public, max-age=86400"},
        )
    target = None if noredirect else first_url(values)
    if target is None:
        if len(values) != len(public):  # filtered: the plain table of the chosen values
            return values_page(record.handle, values)
        # the page kept with the cache entry is the one under Config.public_base: a forwarded
        # base comes from a request, and what one request put in the cache every client would see
        shared = base == config.public_base
        lang = page_language(query)
        # both languages are kept with the entry, and go with it when the record changes
        kept = entry if shared else None
        rendered = None if kept is None else kept.page_en if lang == "en" else kept.page
        if rendered is None:
            address = page_url(config, record.handle, base)
            rendered = await product_page(registry, name, record.handle, public, address, config, lang)
            if kept is not None and lang == "en":
                kept.page_en = rendered
            elif kept is not None:
                kept.page = rendered
        return web.Response(
            body=rendered,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "public, max-age=60"},
        )
    stored, ttl = target
    try:
        url = redirect_target(stored, query.get("urlappend", ""))
    except RedirectRefused as refused:
        return refused_page(record.handle, str(refused))
    if url is None:
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
    """Register the web proxy routes (after every other route), with what its 404 page remembers."""
    app[MISSING_OWNERS] = MissingOwners()
    root = app.router.add_resource("/")
    root.add_route("GET", home)
    root.add_route("*", timed(_page_not_allowed))
    resource = app.router.add_resource(r"/{handle:[\s\S]+}")
    resource.add_route("GET", timed(proxy))
    resource.add_route("HEAD", timed(proxy))
    resource.add_route("*", timed(_page_not_allowed))


async def _page_not_allowed(request: web.Request) -> web.Response:
    """The web face is read only: other methods get a page, as its other errors do."""
    body = (
        "<h1>不支持的请求方法 / Method not allowed</h1>"
        f"<p>{html.escape(request.method[:40])}：请使用 GET / use GET or HEAD.</p>"
    )
    return page("405", body, status=405, headers={"Allow": "GET, HEAD"})
