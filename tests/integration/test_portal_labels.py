"""Label sheets in the portal (issue 18) over a real socket and real Postgres: an A4 PDF in the
3x8 and 4x10 grids whose text names each identifier and its product name, whose pages are as many
as the grid needs, and whose QR codes, rendered as a printer would (poppler's pdftoppm) and read by
a real decoder (zxing-cpp), open the identifier's scan page; ranges, production batches and lists
only of the enterprise's own identifiers."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.enterprise_helpers import bearer, product
from tests.portal_helpers import csrf_of, sign_in


def decoded(pdf: bytes, page: int = 1) -> list[str]:
    """The QR codes of one page, rendered at 150 dpi and decoded."""
    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils (pdftoppm) is not installed; .ci/run installs it")
    import zxingcpp
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp, "labels.pdf")
        source.write_bytes(pdf)
        subprocess.run(
            ["pdftoppm", "-r", "150", "-png", "-f", str(page), "-l", str(page), str(source), f"{tmp}/p"],
            check=True,
            timeout=60,
        )
        (image,) = Path(tmp).glob("p-*.png")
        return [code.text for code in zxingcpp.read_barcodes(Image.open(image))]


async def test_a_range_in_two_grids_with_readable_text_and_qr_codes(tenants):
    client = tenants
    login = {"username": "alice", "password": "password-123"}
    token = (await (await client.post("/identity/token", json=login)).json())["data"]["token"]
    items = [product(f"88.123.45/L-{n:03d}", name=f"齿轮 {n}") for n in range(30)]
    items[5]["value"].append(
        {"index": 2002, "type": "batchNumber", "data": {"format": "string", "value": "B-7"}}
    )
    body = await (await client.post("/identityv2/data/batchCreate", json=items, headers=bearer(token))).json()
    assert body["status"] == 1, body
    assert (await sign_in(client, "alice")).status == 303
    csrf = csrf_of(await (await client.get("/portal/labels?prefix=88.123.45")).text())
    form = {"csrf": csrf, "grid": "3x8", "prefix": "88.123.45", "first": "L-000", "last": "L-029"}
    resp = await client.post("/portal/labels", data=form)
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/pdf"
    pdf = await resp.read()
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 2  # 30 labels, 24 a page
    text = reader.pages[0].extract_text()
    assert "88.123.45/L-000" in text and "齿轮 0" in text and "88.123.45/L-023" in text
    assert "88.123.45/L-024" in reader.pages[1].extract_text()
    codes = decoded(pdf)
    assert len(codes) == 24
    base = str(client.make_url("/")).rstrip("/")
    assert f"{base}/88.123.45/L-000" in codes
    # the scan page the code opens is the identifier's
    scanned = await client.get("/88.123.45/L-000", headers={"Accept": "text/html"})
    assert scanned.status == 200 and "齿轮 0" in await scanned.text()
    # 4x10: one page of 40 holds all 30
    resp = await client.post("/portal/labels", data={**form, "grid": "4x10"})
    assert len(PdfReader(io.BytesIO(await resp.read())).pages) == 1
    # one production batch
    resp = await client.post("/portal/labels", data={**form, "last": "", "batch": "B-7"})
    only = PdfReader(io.BytesIO(await resp.read())).pages[0].extract_text()
    assert "88.123.45/L-005" in only and "88.123.45/L-004" not in only
    # a list
    listed = {**form, "handles": "88.123.45/L-001\n88.123.45/P-0\n"}
    resp = await client.post("/portal/labels", data=listed)
    assert resp.status == 200
    text = PdfReader(io.BytesIO(await resp.read())).pages[0].extract_text()
    assert "88.123.45/L-001" in text and "88.123.45/P-0" in text


async def test_another_enterprises_identifiers_are_not_printed(tenants):
    client = tenants
    assert (await sign_in(client, "bob")).status == 303
    csrf = csrf_of(await (await client.get("/portal/labels")).text())
    form = {"csrf": csrf, "grid": "3x8", "prefix": "88.123.45", "first": "P-0"}
    resp = await client.post("/portal/labels", data=form)
    assert resp.status == 400 and "不是本企业的前缀" in await resp.text()
    resp = await client.post("/portal/labels", data={**form, "handles": "88.123.45/P-0"})
    assert resp.status == 400 and "不是本企业的标识" in await resp.text()
    resp = await client.post("/portal/labels", data={**form, "prefix": "88.123.46", "handles": ""})
    assert resp.status == 400 and "没有选中任何标识" in await resp.text()
    resp = await client.post("/portal/labels", data={"grid": "3x8", "prefix": "88.123.46", "first": "a"})
    assert resp.status == 403  # no CSRF token
