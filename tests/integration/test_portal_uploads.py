"""Uploads in the portal (issue 18) over a real socket and real Postgres: an .xlsx saved with good
and bad rows, a GBK CSV as Excel saves it on Chinese Windows, the progress page fed by the
server's counts, the rejected rows as the importer's report, and the rules of the enterprise API
for every row (a row under another enterprise's prefix is refused, not written)."""

from __future__ import annotations

import asyncio
import csv
import io
import re

import aiohttp
import openpyxl

from tests.portal_helpers import csrf_of, sign_in


def workbook(rows: list[list[str]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def send(client, csrf: str, body: bytes, name: str, template: str = "", with_csrf: bool = True):
    form = aiohttp.FormData()
    if with_csrf:
        form.add_field("csrf", csrf)
    form.add_field("template", template)
    form.add_field("file", body, filename=name, content_type="application/octet-stream")
    return await client.post("/portal/upload", data=form, allow_redirects=False)


async def finished(client, location: str) -> str:
    for _ in range(300):  # bounded: 30 s
        resp = await client.get(location)
        html = await resp.text()
        if "Refresh" not in resp.headers:
            return html
        assert re.search(r'<progress id="progress" max="100" value="\d+"', html)
        await asyncio.sleep(0.1)
    raise AssertionError("the upload did not finish")


async def test_an_xlsx_with_good_and_bad_rows_and_its_rejected_rows(tenants):
    client = tenants
    assert (await sign_in(client, "alice")).status == 303
    csrf = csrf_of(await (await client.get("/portal/upload")).text())
    rows = [["handle", "产品名称", "生产日期", "生产企业"]]
    rows += [[f"88.123.45/X-{n}", f"螺母 {n}", "2026-11-01", "甲公司"] for n in range(2500)]
    rows.append(["88.123.45/BAD-DATE", "螺母", "2026-02-30", "甲公司"])
    rows.append(["88.123.45/NO-NAME", "", "2026-11-01", "甲公司"])
    rows.append(["88.123.46/NOT-MINE", "螺母", "2026-11-01", "乙公司"])  # bob's prefix
    resp = await send(client, csrf, workbook(rows), "产品.xlsx", "general-product-1.0")
    assert resp.status == 303, await resp.text()
    html = await finished(client, resp.headers["Location"])
    assert "已完成" in html
    assert re.search(r'id="accepted">2500<', html) and re.search(r'id="rejected">3<', html), html
    report = await client.get(resp.headers["Location"] + "/rejected")
    assert report.status == 200 and report.headers["Content-Type"].startswith("text/csv")
    text = (await report.read()).decode("utf-8-sig")
    found = list(csv.reader(io.StringIO(text)))
    assert found[0] == ["handle", "产品名称", "生产日期", "生产企业", "拒绝原因"]
    reasons = {row[0]: row[-1] for row in found[1:]}
    assert set(reasons) == {"88.123.45/BAD-DATE", "88.123.45/NO-NAME", "88.123.46/NOT-MINE"}
    assert "要求日期" in reasons["88.123.45/BAD-DATE"] and "第 2502 行" in reasons["88.123.45/BAD-DATE"]
    assert "产品名称" in reasons["88.123.45/NO-NAME"]
    assert (await client.get("/api/handles/88.123.46/NOT-MINE")).status == 404
    assert (await client.get("/api/handles/88.123.45/X-2499")).status == 200
    # the listing moved
    listing = await (await client.get("/portal/")).text()
    assert "共 2503 个标识" in listing
    # the report fixed and sent back: the rows it names go in
    fixed = text.replace("2026-02-30", "2026-02-28").replace(",,2026-11-01", ",螺母,2026-11-01")
    resp = await send(client, csrf, ("\ufeff" + fixed).encode("utf-8"), "fixed.csv", "general-product-1.0")
    assert resp.status == 303, await resp.text()
    html = await finished(client, resp.headers["Location"])
    assert re.search(r'id="accepted">2<', html) and re.search(r'id="rejected">1<', html), html


async def test_a_gbk_csv_and_what_a_stranger_or_a_broken_form_gets(tenants):
    client = tenants
    assert (await sign_in(client, "alice")).status == 303
    csrf = csrf_of(await (await client.get("/portal/upload")).text())
    body = "handle,产品名称,生产企业\r\n88.123.45/GBK-1,不锈钢螺栓,甲公司\r\n".encode("gb18030")
    resp = await send(client, csrf, body, "wps.csv", "general-product-1.0")
    location = resp.headers["Location"]
    html = await finished(client, location)
    assert re.search(r'id="accepted">1<', html)
    stored = await (await client.get("/api/handles/88.123.45/GBK-1")).json()
    assert "不锈钢螺栓" in str(stored)
    # without the CSRF field: refused before the file is kept
    resp = await send(client, csrf, body, "wps.csv", with_csrf=False)
    assert resp.status == 403
    # a header that is not the importer's: the reason, nothing started
    resp = await send(client, csrf, b"name,value\r\na,b\r\n", "x.csv")
    assert resp.status == 400 and "handle" in await resp.text()
    # another enterprise sees no upload of alice's, nor its report
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "bob")).status == 303
    assert (await client.get(location)).status == 404
    assert (await client.get(location + "/rejected")).status == 404
    assert "wps.csv" not in await (await client.get("/portal/upload")).text()
