"""The page a scanned product code opens, and the QR code itself.

`GET /{handle}` from a browser shows a product page when the identifier has no URL value or when
`?noredirect` is given: the template's item names (Chinese, with English labels where the
template has them) and values, the template's display name as the product type, the enterprise,
the registration and update times, and the identifier's QR code; `?lang=en` the same in English.
Everything is inline (no external assets) and escaped; the rendered page (each language) is kept
with the worker's cache entry, so a popular product costs a dict lookup.
`GET /{handle}.png`, `?qr=png` and `?qr=svg` answer the QR code, sized for printing on a label.
"""

from __future__ import annotations

import html
import io
import re
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import segno

from resolver.config import Config
from resolver.core.handles import HandleName
from resolver.core.templates import TEMPLATE_INDEX, Template, template_version_of
from resolver.core.values import StoredValue
from resolver.services.registry import Registry
from resolver.store import scan as scan_store
from resolver.store.rows import PrefixInfo
from resolver.upstream.bounded import BoundedCache

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

# Every text colour of the pages and the background it is drawn on; tests/unit/test_scan_contrast.py
# checks each pair against WCAG 2.x (contrast ratio at least 4.5:1) and that STYLE uses no other.
INK, MUTED, LABEL, LINK, WARN = "#1d2330", "#46506a", "#5b6478", "#0b5cd5", "#8a4b00"
PAGE_BG, CARD_BG, WARN_BG = "#f3f5f8", "#ffffff", "#fff7ed"
COLOUR_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("text", INK, CARD_BG),
    ("text on the page", INK, PAGE_BG),
    ("identifier, headings", MUTED, CARD_BG),
    ("labels", LABEL, CARD_BG),
    ("footer", LABEL, PAGE_BG),
    ("links", LINK, CARD_BG),
    ("links on the page", LINK, PAGE_BG),
    ("warning", WARN, WARN_BG),
    ("text on a warning", INK, WARN_BG),
)
STYLE = f"""
*{{box-sizing:border-box}}body{{margin:0;font:16px/1.5 system-ui,-apple-system,"PingFang SC","Microsoft YaHei",
sans-serif;color:{INK};background:{PAGE_BG}}}main{{max-width:40rem;margin:0 auto;padding:1rem}}
header,section{{background:{CARD_BG};border-radius:12px;padding:.75rem 1rem;margin-top:1rem}}
header{{margin-top:0}}nav{{text-align:right;font-size:.9rem}}h1{{font-size:1.45rem;margin:0 0 .25rem}}
.id{{font-family:ui-monospace,monospace;word-break:break-all;color:{MUTED}}}.by{{margin:.4rem 0 0}}
h2{{font-size:1rem;margin:.5rem 0;color:{MUTED}}}dl{{margin:0}}dt{{font-size:.85rem;color:{LABEL};margin-top:.6rem}}
dt span{{margin-left:.35rem}}dd{{margin:0 0 .4rem;word-break:break-word;border-bottom:1px solid #eef0f4;
padding-bottom:.4rem}}a{{color:{LINK}}}footer{{font-size:.8rem;color:{LABEL};text-align:center;padding:1rem}}
.kind{{margin:.2rem 0 0;font-size:.85rem;color:{LABEL}}}.share{{font-size:.85rem}}.share svg{{width:120px;height:120px;display:block}}
.warn{{background:{WARN_BG};color:{INK};border-left:4px solid {WARN};padding:.6rem .8rem;border-radius:8px}}
.warn strong{{color:{WARN}}}ul{{padding-left:1.2rem}}table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #eef0f4;padding:.4rem;text-align:left;vertical-align:top}}
code{{word-break:break-all}}
"""
# the zone names of Beijing time in the tz database (Asia/Shanghai and its aliases)
BEIJING_ZONES = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Chungking", "Asia/Harbin", "PRC"})
QR_ALT = {"zh": "本页二维码 / QR code of this page", "en": "QR code of this page"}
# How long the 404 page may name a prefix's enterprise without asking again, and how much such
# answers take: strangers' guesses under one prefix share one lookup, a renamed enterprise or a
# newly allocated prefix shows within this many seconds.
MISSING_OWNER_TTL = 10.0
MISSING_OWNER_BYTES = 256 * 1024


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


def shown_time(moment: datetime | None, zone: str, lang: str = "zh") -> str:
    """A time as people read it, in the node's zone (Config.time_zone): Beijing time is 北京时间
    (Beijing time in English), any other zone its name and UTC offset at that moment."""
    if moment is None:
        return "—"
    local = moment.astimezone(ZoneInfo(zone))
    text = local.strftime("%Y-%m-%d %H:%M")
    offset = local.strftime("%z")
    utc = f"UTC{offset[:3]}:{offset[3:]}"
    if zone in BEIJING_ZONES:
        return f"{text} 北京时间" if lang == "zh" else f"{text} Beijing time ({utc})"
    return f"{text} {zone} ({utc})"


def _heading(zh: str, en: str, lang: str) -> str:
    return f'{zh} <span lang="en">{en}</span>' if lang == "zh" else en


def _row(label: str, english: str | None, value: str, lang: str = "zh") -> str:
    if lang == "en":
        return f"<dt>{html.escape(english or label)}</dt><dd>{value}</dd>"
    tail = f'<span lang="en">{html.escape(english)}</span>' if english else ""
    return f"<dt>{html.escape(label)}{tail}</dt><dd>{value}</dd>"


def document(title: str, body: str, lang: str) -> bytes:
    """A whole page in the shared style: `title` is escaped here, `body` must be already."""
    return (
        f'<!doctype html><html lang="{"en" if lang == "en" else "zh-CN"}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    ).encode()


def _switch(lang: str) -> str:
    # the page's own address plus a query: constant, so the cached page is the same for everyone
    if lang == "en":
        return '<nav><a href="?noredirect" lang="zh-CN">中文</a></nav>'
    return '<nav><a href="?noredirect&amp;lang=en" lang="en">English</a></nav>'


def _footer(node_prefix: str, lang: str) -> str:
    prefix = html.escape(node_prefix)
    if lang == "en":
        return f"<footer>Industrial internet identifier resolution, secondary node {prefix}</footer>"
    return (
        f"<footer>工业互联网标识解析二级节点 {prefix} · "
        '<span lang="en">Industrial internet identifier resolution, secondary node</span></footer>'
    )


async def enterprise_of(registry: Registry, name: HandleName) -> tuple[PrefixInfo | None, str | None]:
    """The enterprise prefix an identifier lives under (nearest first, Registry.owner_of) and its
    enterprise's name: who registered it, or whom to ask about it."""
    owner = await registry.owner_of(name)
    if owner is None:
        return None, None
    return owner, await scan_store.enterprise_name(registry.store, owner.enterprise_id)


class MissingOwners:
    """enterprise_of for the 404 page, remembered per prefix for MISSING_OWNER_TTL seconds: a
    stranger's guesses cost no database read each beyond the handle's own (bounded in bytes)."""

    def __init__(self, ttl: float = MISSING_OWNER_TTL, max_bytes: int = MISSING_OWNER_BYTES) -> None:
        self.ttl = ttl
        self._known: BoundedCache[tuple[str | None, str | None]] = BoundedCache(max_bytes)

    async def enterprise_of(self, registry: Registry, name: HandleName) -> tuple[str | None, str | None]:
        """(the enterprise prefix, the enterprise's name) of a handle's prefix; Nones outside."""
        if name.is_prefix_handle:  # no enterprise prefix governs a prefix handle
            return None, None
        now = time.monotonic()
        known = self._known.get(name.prefix, now)
        if known is not None:
            return known[0]
        owner, enterprise = await enterprise_of(registry, name)
        answer = (None if owner is None else owner.prefix, enterprise)
        size = len((answer[0] or "").encode()) + len((enterprise or "").encode())
        self._known.put(name.prefix, answer, self.ttl, size, time.monotonic())
        return answer


def page_language(query: Any) -> str:
    """'en' for ?lang=en, else 'zh' (Chinese with English sub-labels)."""
    return "en" if query.get("lang") == "en" else "zh"


async def product_page(
    registry: Registry,
    name: HandleName,
    handle: str,
    values: list[StoredValue],
    address: str,
    config: Config,
    lang: str = "zh",
) -> bytes:
    """The rendered page of one identifier (its public values): `handle` as registered (the page
    is shared by every client, so not as one of them wrote it), `address` the page's own.

    What a shopper looks for comes first: the product's name, who registered it and when, then the
    template's items in template order, other values, the registration, and last, small, the
    page's QR code to share. The template is never named by its version id."""
    store = registry.store
    template: Template | None = None
    version = template_version_of(values)
    if version is not None:
        template = (await registry.load_templates(store, [(name.prefix, version)])).get(
            (name.prefix, version)
        )
    _, enterprise = await enterprise_of(registry, name)
    chosen = None if template is None else (template.prefix, template.version)
    extras = await scan_store.page_extras(store, name.key, chosen)
    zone = config.time_zone
    created = shown_time(extras.created_at if extras else None, zone, lang)
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
            attributes.append(_row(item.name, item.name_en, _link_or_text(_shown(value)), lang))
            if item.id_index == 2000 or item.id_type.lower() == "productname":
                title = _shown(value)
    others = [
        _row(v["type"], None, _link_or_text(_shown(v)), lang)
        for v in values
        if v["index"] not in used and not v["type"].upper().startswith("HS_")
    ]
    sections = []
    if attributes:
        sections.append(
            f"<section><h2>{_heading('产品信息', 'Product information', lang)}</h2>"
            f"<dl>{''.join(attributes)}</dl></section>"
        )
    if others:
        sections.append(
            f"<section><h2>{_heading('标识数据', 'Identifier data', lang)}</h2><dl>{''.join(others)}</dl></section>"
        )
    registration = [
        _row("登记企业", "Registered by", html.escape(enterprise) if enterprise else "—", lang),
        _row("登记时间", "Registered", created, lang),
        _row("更新时间", "Updated", shown_time(extras.updated_at if extras else None, zone, lang), lang),
    ]
    sections.append(
        f"<section><h2>{_heading('登记信息', 'Registration', lang)}</h2><dl>{''.join(registration)}</dl></section>"
    )
    if lang == "en":
        by = f"Registered by {html.escape(enterprise)} · {created}" if enterprise else f"Registered {created}"
    else:
        by = f"由 {html.escape(enterprise)} 登记 · {created}" if enterprise else f"登记于 {created}"
    alt = QR_ALT[lang]
    svg = qr_code(address).svg_inline(scale=4, border=2, title=alt)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{html.escape(alt, quote=True)}" ', 1)
    link = html.escape(address, quote=True)
    share = (
        f'<section class="share"><h2>{_heading("分享", "Share", lang)}</h2>{svg}'
        f'<a href="{link}?qr=png" download>{"二维码" if lang == "zh" else "QR code"} PNG</a> · '
        f'<a href="{link}?qr=svg">SVG</a></section>'
    )
    kind = _product_type(extras, lang)
    body = (
        f"<header>{_switch(lang)}<h1>{html.escape(title)}</h1>"
        f'<div class="id">{html.escape(handle)}</div><p class="by">{by}</p>{kind}</header>'
        f"{''.join(sections)}{share}{_footer(config.node_prefix, lang)}"
    )
    return document(f"{title} · {handle}", body, lang)


def _product_type(extras: scan_store.PageExtras | None, lang: str) -> str:
    """The template's display name as a small line (English on the English page, else Chinese,
    each falling back to the other); nothing when the template has none: never its version id."""
    if extras is None:
        return ""
    zh, en = extras.template_name, extras.template_name_en
    shown = (en or zh) if lang == "en" else (zh or en)
    if not shown:
        return ""
    label = "Product type: " if lang == "en" else "产品类型："
    return f'<p class="kind">{label}{html.escape(shown)}</p>'


def missing_page(
    handle: str, enterprise: str | None, prefix: str | None, node_prefix: str, lang: str
) -> bytes:
    """The 404 page of an identifier not registered here: what it may mean and whom to ask (the
    enterprise that holds its prefix, when one does, or the node's operator)."""
    shown = html.escape(handle)
    maker = html.escape(enterprise) if enterprise else None
    if lang == "en":
        ask = maker or (
            f"the enterprise that holds prefix {html.escape(prefix)}" if prefix else "the manufacturer"
        )
        body = (
            '<header><nav><a href="?lang=zh" lang="zh-CN">中文</a></nav>'
            f'<h1>Identifier not registered</h1><div class="id">{shown}</div></header>'
            '<section><p class="warn"><strong>This identifier is not registered on this node.</strong> '
            "It may be mistyped, not registered yet, or the product may be counterfeit.</p>"
            "<h2>What you can do</h2><ul><li>Check the code printed on the product and scan or type it again.</li>"
            f"<li>Ask the manufacturer: {ask}.</li>"
            f"<li>Ask the operator of secondary node {html.escape(node_prefix)}.</li></ul></section>"
        )
        return document(f"Identifier not registered · {handle}", body + _footer(node_prefix, lang), lang)
    ask = maker or (f"标识前缀 {html.escape(prefix)} 所属企业" if prefix else "生产企业")
    body = (
        '<header><nav><a href="?lang=en" lang="en">English</a></nav>'
        f'<h1>该标识未登记 <span lang="en">Identifier not registered</span></h1><div class="id">{shown}</div></header>'
        '<section><p class="warn"><strong>该标识未在本节点登记</strong>，可能是输入有误、尚未登记，或为假冒产品。</p>'
        '<h2>建议 <span lang="en">What you can do</span></h2><ul><li>核对产品上的标识码，重新扫码或输入。</li>'
        f"<li>联系生产企业：{ask}。</li><li>联系二级节点 {html.escape(node_prefix)} 的运营方。</li></ul></section>"
    )
    return document(f"该标识未登记 · {handle}", body + _footer(node_prefix, lang), lang)


def invalid_page(handle: str, reason_zh: str, reason_en: str, node_prefix: str, lang: str) -> bytes:
    """The 400 page of something that is not an identifier (its reasons unescaped)."""
    if lang == "en":
        heading, reason = "Not a valid identifier", html.escape(reason_en)
    else:
        heading = '不是有效的标识 <span lang="en">Not a valid identifier</span>'
        reason = f'{html.escape(reason_zh)}<br><span lang="en">{html.escape(reason_en)}</span>'
    body = (
        f'<header><h1>{heading}</h1><div class="id">{html.escape(handle)}</div></header>'
        f'<section><p class="warn">{reason}</p></section>{_footer(node_prefix, lang)}'
    )
    return document(handle, body, lang)


def wants_qr(query: Any) -> str | None:
    kind = query.get("qr")
    return kind if kind in ("png", "svg") else None
