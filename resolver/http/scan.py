"""The page a scanned product code opens, and the QR code itself.

`GET /{handle}` from a browser shows a product page when the identifier has no URL value or when
`?noredirect` is given: the template's item names (Chinese, with English labels where the
template has them) and values, the enterprise, the registration and update times, and the
identifier's QR code. Everything is inline (no external assets) and escaped; the rendered page is
kept with the worker's cache entry, so a popular product costs a dict lookup.
`GET /{handle}.png`, `?qr=png` and `?qr=svg` answer the QR code, sized for printing on a label.
"""

from __future__ import annotations

import html
import io
import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

import segno

from resolver.config import Config
from resolver.core.handles import HandleName
from resolver.core.templates import TEMPLATE_INDEX, Template, template_version_of
from resolver.core.values import StoredValue
from resolver.services.registry import Registry
from resolver.store import scan as scan_store

QR_SCALE_PNG = 10  # 10 px a module: a version-3 code is 330 px, about 28 mm at 300 dpi
QR_BORDER = 4
# An absolute http(s) URL whose authority (at most one '@', a host, maybe a port) ends where every
# parser ends it: at '/', '?' or '#'. A backslash or a space there is read one way by browsers
# (WHATWG: '\\' is '/' in http(s) URLs) and another by curl or urllib, so such a URL is not one.
WEB_URL = re.compile(
    r"(?i:https?)://(?:[^/?#\\\s@]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^/?#\\\s@:\[\]]+)(?::[0-9]*)?(?P<rest>[/?#].*)?",
    re.DOTALL,
)
# what stays as it is of a handle in its page's address: RFC 3986 path characters, less '%'
_PATH_SAFE = "/:@!$&'()*+,;="

_STYLE = """
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"PingFang SC","Microsoft YaHei",
sans-serif;color:#1d2330;background:#f3f5f8}main{max-width:40rem;margin:0 auto;padding:1rem}
header{background:#fff;border-radius:12px;padding:1rem;display:flex;gap:1rem;align-items:center;
flex-wrap:wrap}header svg{width:132px;height:132px;flex:none}h1{font-size:1.35rem;margin:0 0 .25rem}
.id{font-family:ui-monospace,monospace;word-break:break-all;color:#46506a}section{background:#fff;
border-radius:12px;padding:.5rem 1rem;margin-top:1rem}h2{font-size:1rem;margin:.5rem 0;color:#46506a}
dl{margin:0}dt{font-size:.85rem;color:#6b7489;margin-top:.6rem}dt span{margin-left:.35rem}
dd{margin:0 0 .4rem;word-break:break-word;border-bottom:1px solid #eef0f4;padding-bottom:.4rem}
a{color:#0b5cd5}footer{font-size:.8rem;color:#6b7489;text-align:center;padding:1rem}
"""


def page_url(config: Config, handle: str, base: str | None = None) -> str:
    """The address of an identifier's page, as its QR code and links give it: under `base` (what
    resolver/http/forwarded.link_base chose for the request), else --public-url (by default
    http://HOST:PORT).

    Never from the request itself (Host, X-Forwarded-*, Forwarded, an absolute request target):
    only a trusted proxy's forwarded scheme and host reach `base`, and a page rendered under a
    base other than Config.public_base is not kept in the worker's cache (resolver/http/proxy.py),
    since whatever one request put there would be shown to every client after it.
    """
    return f"{base or config.public_base}/{quote(handle, safe=_PATH_SAFE)}"


def qr_code(text: str) -> segno.QRCode:
    return segno.make(text, error="m", micro=False)


def qr_png(text: str) -> bytes:
    out = io.BytesIO()
    qr_code(text).save(out, kind="png", scale=QR_SCALE_PNG, border=QR_BORDER)
    return out.getvalue()


def qr_svg(text: str) -> bytes:
    out = io.BytesIO()
    qr_code(text).save(out, kind="svg", scale=8, border=QR_BORDER, xmldecl=True, title=text)
    return out.getvalue()


def is_web_url(text: str) -> bool:
    """True for an absolute http(s) URL that every parser reads with the same host: the only
    URLs the web face links or redirects to."""
    return WEB_URL.fullmatch(text) is not None


def web_link(value: str) -> str | None:
    """An anchor to `value` when it is a web URL (nofollow, noopener), else None: the one way a
    stored value becomes a link on any page of the node."""
    if not is_web_url(value):
        return None
    return f'<a href="{html.escape(value, quote=True)}" rel="nofollow noopener">{html.escape(value)}</a>'


def _link_or_text(value: str) -> str:
    return web_link(value) or html.escape(value)


def _shown(value: StoredValue) -> str:
    data = value["data"]["value"]
    return data if isinstance(data, str) else str(data)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def _row(label: str, english: str | None, value: str) -> str:
    tail = f'<span lang="en">{html.escape(english)}</span>' if english else ""
    return f"<dt>{html.escape(label)}{tail}</dt><dd>{value}</dd>"


async def product_page(
    registry: Registry,
    name: HandleName,
    handle: str,
    values: list[StoredValue],
    address: str,
    node_prefix: str,
) -> bytes:
    """The rendered page of one identifier (its public values): `handle` as registered (the page
    is shared by every client, so not as one of them wrote it), `address` the page's own."""
    store = registry.store
    template: Template | None = None
    version = template_version_of(values)
    if version is not None:
        template = (await registry.load_templates(store, [(name.prefix, version)])).get(
            (name.prefix, version)
        )
    owner = await registry.owner_of(name)
    enterprise = None
    if owner is not None:
        enterprise = await scan_store.enterprise_name(store, owner.enterprise_id)
    times = await scan_store.handle_times(store, name.key)
    by_index = {v["index"]: v for v in values}
    attributes: list[str] = []
    used = {TEMPLATE_INDEX}
    title = handle
    if template is not None:
        for item in template.items:
            value = by_index.get(item.id_index)
            if value is None or not item.enabled:
                continue
            used.add(item.id_index)
            attributes.append(_row(item.name, item.name_en, _link_or_text(_shown(value))))
            if item.id_index == 2000 or item.id_type.lower() == "productname":
                title = _shown(value)
    others = [
        _row(v["type"], None, _link_or_text(_shown(v)))
        for v in values
        if v["index"] not in used and not v["type"].upper().startswith("HS_")
    ]
    svg = qr_code(address).svg_inline(scale=4, border=2, title=handle)
    sections = []
    if attributes:
        sections.append(
            f'<section><h2>产品信息 <span lang="en">Product information</span>'
            f"{f' · {html.escape(template.version)}' if template else ''}</h2><dl>{''.join(attributes)}</dl></section>"
        )
    if others:
        sections.append(
            f'<section><h2>标识数据 <span lang="en">Identifier data</span></h2><dl>{"".join(others)}</dl></section>'
        )
    registration = [
        _row("登记企业", "Registered by", html.escape(enterprise) if enterprise else "—"),
        _row("登记时间", "Registered", _when(times.created_at if times else None)),
        _row("更新时间", "Updated", _when(times.updated_at if times else None)),
    ]
    sections.append(
        f'<section><h2>登记信息 <span lang="en">Registration</span></h2><dl>{"".join(registration)}</dl></section>'
    )
    body = (
        f"<main><header>{svg}<div><h1>{html.escape(title)}</h1>"
        f'<div class="id">{html.escape(handle)}</div>'
        f'<div><a href="{html.escape(address, quote=True)}?qr=png" download>二维码 PNG</a> · '
        f'<a href="{html.escape(address, quote=True)}?qr=svg">SVG</a></div></div></header>'
        f"{''.join(sections)}"
        f"<footer>工业互联网标识解析二级节点 {html.escape(node_prefix)} · "
        f'<span lang="en">Industrial internet identifier resolution, secondary node</span></footer></main>'
    )
    document = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · {html.escape(handle)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return document.encode("utf-8")


def wants_qr(query: Any) -> str | None:
    kind = query.get("qr")
    return kind if kind in ("png", "svg") else None
