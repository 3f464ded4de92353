"""The page a scanned product code opens, and its QR code."""

from __future__ import annotations

import io
import struct
from html.parser import HTMLParser
from urllib.parse import quote, unquote, urlsplit

import segno

from tests.enterprise_helpers import admit, bearer, user_token
from tests.helpers import basic

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def item(handle: str, **values: str) -> dict[str, object]:
    indexes = {
        "productName": 2000,
        "productModel": 2001,
        "productionDate": 2003,
        "manufacturer": 2004,
        "URL": 2009,
    }
    return {
        "handle": handle,
        "templateVersion": "general-product-1.0",
        "value": [
            {"index": indexes[t], "type": t, "data": {"format": "string", "value": v}}
            for t, v in values.items()
        ],
    }


async def register(client, token: str, *items: dict[str, object]) -> None:
    body = await (
        await client.post("/identityv2/data/batchCreate", json=list(items), headers=bearer(token))
    ).json()
    assert body["status"] == 1 and all(r["code"] == 1 for r in body["data"]), body


async def test_a_templated_identifier_opens_a_bilingual_product_page(client):
    enterprise, _ = await admit(client, "88.123.45", 61, name="华东紧固件有限公司")
    token = await user_token(client, enterprise, "scanner")
    await register(
        client,
        token,
        item(
            "88.123.45/M8-0001",
            productName="螺栓 M8",
            productModel="GB/T 5782",
            productionDate="2026-11-01",
            manufacturer="<b>华东</b>紧固件",
            URL="https://example.com/m8",
        ),
    )
    # a URL value in the template's 详情链接 item: a browser is redirected unless it asks for the page
    assert (await client.get("/88.123.45/M8-0001", headers=BROWSER, allow_redirects=False)).status == 302
    resp = await client.get("/88.123.45/M8-0001?noredirect", headers=BROWSER)
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    for text in (
        "产品名称",
        "Product name",
        "螺栓 M8",
        "产品型号",
        "Model",
        "GB/T 5782",
        "生产日期",
        "2026-11-01",
        "华东紧固件有限公司",
        "登记时间",
        "Registered",
        "更新时间",
        "88.123.45/M8-0001",
        "<svg",
    ):
        assert text in page, text
    assert "<title>螺栓 M8 · 88.123.45/M8-0001</title>" in page
    assert '<a href="https://example.com/m8"' in page
    assert "&lt;b&gt;华东&lt;/b&gt;紧固件" in page and "<b>华东" not in page  # escaped
    assert 'name="viewport"' in page and "http" not in page.split("<body>")[0].replace("http-equiv", "")


async def test_a_plain_identifier_without_a_url_shows_its_values(client):
    await client.put(
        "/api/handles/88.123/PLAIN-1",
        json={
            "values": [
                {"index": 1, "type": "DESC", "data": "<script>alert(1)</script>"},
                {"index": 2, "type": "EMAIL", "data": "qa@example.com"},
            ]
        },
        headers=basic(),
    )
    resp = await client.get("/88.123/PLAIN-1", headers=BROWSER)
    page = await resp.text()
    assert resp.status == 200 and "标识数据" in page and "qa@example.com" in page and "DESC" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "登记企业" in page  # node-level identifiers have no enterprise: shown as a dash


async def test_the_page_follows_changes(client):
    await client.put(
        "/api/handles/88.123/CHANGING",
        json={"values": [{"index": 1, "type": "DESC", "data": "v1"}]},
        headers=basic(),
    )
    assert "v1" in await (await client.get("/88.123/CHANGING", headers=BROWSER)).text()
    await client.put(
        "/api/handles/88.123/CHANGING",
        json={"values": [{"index": 1, "type": "DESC", "data": "v2"}]},
        headers=basic(),
    )
    page = await (await client.get("/88.123/CHANGING", headers=BROWSER)).text()
    assert "v2" in page and "v1" not in page


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack("!II", data[16:24])


async def test_the_qr_code_as_png_and_svg_encodes_the_page_address(client):
    await client.put(
        "/api/handles/88.123/QR-1",
        json={"values": [{"index": 1, "type": "DESC", "data": "x"}]},
        headers=basic(),
    )
    png = await client.get("/88.123/QR-1.png")
    assert png.status == 200 and png.content_type == "image/png"
    data = await png.read()
    width, height = png_size(data)
    assert width == height and width >= 290  # 10 px a module: prints sharp on a label
    # the node's configured address (--public-url, by default http://HOST:PORT), never the request's
    page_url = "http://127.0.0.1:8000/88.123/QR-1"
    expected = io.BytesIO()
    segno.make(page_url, error="m", micro=False).save(expected, kind="png", scale=10, border=4)
    assert data == expected.getvalue()
    svg = await client.get("/88.123/QR-1?qr=svg")
    assert svg.content_type == "image/svg+xml" and (await svg.text()).lstrip().startswith("<?xml")
    assert (await client.get("/88.123/NOPE.png")).status == 404


class Markup(HTMLParser):
    """What a browser's tokenizer makes of a page: its tags, attributes and script text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "header", "div", "h1", "h2", "section",
    "dl", "dt", "dd", "span", "a", "footer", "svg", "path", "table", "tr", "th", "td", "code", "p",
    "nav", "ul", "li", "strong", "br",
}  # fmt: skip


def assert_inert(page: str, hostile: list[str]) -> None:
    """Only the page's own elements; links are http(s) or the page's own; the hostile text shows
    as text."""
    markup = Markup()
    markup.feed(page)
    markup.close()
    for tag, attrs in markup.tags:
        assert tag in PAGE_TAGS, (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        href = attrs.get("href")
        if href is not None:
            assert href.startswith(("https://", "http://", "?")), href
    shown = "".join(markup.text)
    for text in hostile:
        assert text in shown, text


async def test_every_page_escapes_hostile_handles_types_and_values(client):
    """The scan page, the values page (a type filter) and the not-found page, with markup in the
    handle's suffix, in types, in values and in a URL value's quotes."""
    suffix = "<img src=x onerror=alert(1)>\"'&x=%41?#"
    handle = f"88.123/{suffix}"
    hostile = [
        "<script>alert(1)</script>",
        '"><svg onload=alert(2)>',
        "</title><script>alert(3)</script>",
    ]
    values = [
        {"index": 1, "type": "DESC", "data": hostile[0]},
        {"index": 2, "type": hostile[1], "data": hostile[2]},
        {"index": 3, "type": "URL.doc", "data": 'https://ok.example/"><script>alert(4)</script>'},
        {"index": 4, "type": "URL.app", "data": "javascript:alert(5)"},
    ]
    path = "/88.123/" + quote(suffix, safe="")
    resp = await client.put(f"/api/handles{path}", json={"values": values}, headers=basic())
    assert resp.status == 200, await resp.text()
    scan = await client.get(f"{path}?noredirect", headers=BROWSER)
    assert scan.status == 200
    page = await scan.text()
    assert_inert(page, [*hostile, suffix, "javascript:alert(5)"])
    # the page's own links name the handle percent-encoded: its '?', '#' and '%' stay in the path
    markup = Markup()
    markup.feed(page)
    links = [attrs["href"] for tag, attrs in markup.tags if tag == "a"]
    address = "http://127.0.0.1:8000/88.123/%3Cimg%20src=x%20onerror=alert(1)%3E%22'&x=%2541%3F%23"
    assert f"{address}?qr=png" in links and f"{address}?qr=svg" in links
    assert unquote(urlsplit(address).path) == f"/{handle}"
    table = await (await client.get(f"{path}?type=DESC&type=URL.app", headers=BROWSER)).text()
    assert_inert(table, [hostile[0], suffix, "javascript:alert(5)"])
    missing = await client.get("/88.123/" + quote("<b>nope</b>", safe=""), headers=BROWSER)
    assert missing.status == 404
    assert_inert(await missing.text(), ["<b>nope</b>"])
    svg = await (await client.get(f"{path}?qr=svg")).text()
    assert "<img" not in svg and "%3Cimg%20src=x" in svg  # its title is the page's address


async def test_the_shopper_reads_the_product_first_and_the_qr_code_last(client):
    """Issue 16: product name, enterprise and registration time first (北京时间, the node's zone),
    the template's version id in no heading, the QR code small and last behind 分享."""
    enterprise, _ = await admit(client, "88.123.47", 63, name="江苏示例电器有限公司")
    token = await user_token(client, enterprise, "shopper")
    await register(
        client,
        token,
        item("88.123.47/TV-1", productName="电视机 55 寸", productModel="X55", manufacturer="示例电器"),
    )
    page = await (await client.get("/88.123.47/TV-1", headers=BROWSER)).text()
    assert '<html lang="zh-CN">' in page
    h1 = page.index("<h1>")
    assert page[h1:].startswith("<h1>电视机 55 寸</h1>"), page[h1 : h1 + 80]
    assert h1 < page.index("江苏示例电器有限公司") < page.index("X55") < page.index("<svg")
    assert "北京时间" in page and "UTC" not in page.split("<footer")[0]
    assert "分享" in page and 'role="img"' in page and "本页二维码" in page
    for heading in [page[m : page.index("</h", m)] for m in range(len(page)) if page.startswith("<h", m)]:
        assert "general-product-1.0" not in heading, heading
    english = await (await client.get("/88.123.47/TV-1?lang=en", headers=BROWSER)).text()
    assert '<html lang="en">' in english and "Beijing time" in english and "北京时间" not in english
    assert "电视机 55 寸" in english  # the product's own name stays as registered


async def test_a_code_that_is_not_registered_says_what_it_may_mean_and_whom_to_ask(client):
    await admit(client, "88.123.48", 64, name="南通示例纺织有限公司")
    resp = await client.get("/88.123.48/FAKE-1", headers=BROWSER)
    page = await resp.text()
    assert resp.status == 404 and resp.content_type == "text/html"
    assert '<html lang="zh-CN">' in page and "<style>" in page
    for text in ("该标识未在本节点登记", "假冒产品", "核对产品上的标识码", "南通示例纺织有限公司", "运营方"):
        assert text in page, text
    english = await (await client.get("/88.123.48/FAKE-1?lang=en", headers=BROWSER)).text()
    assert '<html lang="en">' in english and "counterfeit" in english and "南通示例纺织有限公司" in english
    # a prefix held by no enterprise: the prefix is named instead
    nobody = await (await client.get("/88.123.99/X", headers=BROWSER)).text()
    assert "标识前缀 88.123.99 所属企业" in nobody


async def test_the_page_names_the_product_type_by_the_templates_display_name(client):
    """Issue 16: the template's display name (schema/0010_template_names.sql, templateName and
    templateNameEn of the template API) as a small line, in the page's language, each falling back
    to the other; a template without one shows no such line and never its version id."""
    enterprise, _ = await admit(client, "88.123.49", 65, name="常州示例五金有限公司")
    token = await user_token(client, enterprise, "kinds")
    await register(client, token, item("88.123.49/G-1", productName="扳手", manufacturer="示例五金"))
    page = await (await client.get("/88.123.49/G-1", headers=BROWSER)).text()
    assert '<p class="kind">产品类型：通用产品</p>' in page
    english = await (await client.get("/88.123.49/G-1?lang=en", headers=BROWSER)).text()
    assert '<p class="kind">Product type: General product</p>' in english and "通用产品" not in english

    def template(version: str, **names: str) -> dict[str, object]:
        items = [{"name": "名称", "idType": "productName", "idIndex": 2000, "required": True}]
        return {"prefix": "88.123.49", "version": version, "items": items, **names}

    for body in (template("named-1", templateName="五金工具"), template("plain-1")):
        created = await (await client.post("/snms/api/v5/template", json=body, headers=bearer(token))).json()
        assert created["status"] == 1, created
    for handle, version in (("88.123.49/N-1", "named-1"), ("88.123.49/P-1", "plain-1")):
        await register(client, token, {**item(handle, productName="钳子"), "templateVersion": version})
    named = await (await client.get("/88.123.49/N-1", headers=BROWSER)).text()
    assert '<p class="kind">产品类型：五金工具</p>' in named
    named_en = await (await client.get("/88.123.49/N-1?lang=en", headers=BROWSER)).text()
    assert '<p class="kind">Product type: 五金工具</p>' in named_en  # no English name: the Chinese one
    for path in ("/88.123.49/P-1", "/88.123.49/P-1?lang=en"):
        plain = await (await client.get(path, headers=BROWSER)).text()
        assert "<h1>钳子</h1>" in plain and 'class="kind"' not in plain and "plain-1" not in plain


async def test_the_english_page_is_kept_with_the_entry_and_follows_changes(client):
    """Issue 16: ?lang=en is kept with the cache entry as the Chinese page is, and goes with it
    when the record changes."""
    await client.put(
        "/api/handles/88.123/CHANGING-EN",
        json={"values": [{"index": 1, "type": "DESC", "data": "first"}]},
        headers=basic(),
    )
    first = await (await client.get("/88.123/CHANGING-EN?lang=en", headers=BROWSER)).read()
    assert b"first" in first and b'<html lang="en">' in first
    assert await (await client.get("/88.123/CHANGING-EN?lang=en", headers=BROWSER)).read() == first
    chinese = await (await client.get("/88.123/CHANGING-EN", headers=BROWSER)).text()
    assert '<html lang="zh-CN">' in chinese  # the two languages are kept apart
    await client.put(
        "/api/handles/88.123/CHANGING-EN",
        json={"values": [{"index": 1, "type": "DESC", "data": "second"}]},
        headers=basic(),
    )
    english = await (await client.get("/88.123/CHANGING-EN?lang=en", headers=BROWSER)).text()
    assert "second" in english and "first" not in english and '<html lang="en">' in english
    chinese = await (await client.get("/88.123/CHANGING-EN", headers=BROWSER)).text()
    assert "second" in chinese and '<html lang="zh-CN">' in chinese


async def test_guesses_under_a_prefix_name_its_enterprise_every_time(client):
    """Issue 16: the 404 page's enterprise is remembered per prefix (scan.MissingOwners): many
    guesses under two enterprises' prefixes, in both languages, each names its own."""
    await admit(client, "88.123.50", 66, name="无锡示例食品有限公司")
    await admit(client, "88.123.51", 67, name="苏州示例药业有限公司")
    for n in range(3):
        for prefix, maker, other in (
            ("88.123.50", "无锡示例食品有限公司", "苏州示例药业有限公司"),
            ("88.123.51", "苏州示例药业有限公司", "无锡示例食品有限公司"),
        ):
            for lang in ("", "?lang=en"):
                resp = await client.get(f"/{prefix}/GUESS-{n}{lang}", headers=BROWSER)
                page = await resp.text()
                assert resp.status == 404 and maker in page and other not in page, (prefix, n, lang)
