"""A real browser (Debian's headless Chromium) opens the scan page of a templated identifier and of
a plain one on the real `resolver serve` process: the rendered text is checked and a phone-sized
screenshot of each is kept in tests/artifacts/."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.helpers import basic
from tests.nodes import admit_over_http, start_node

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def chromium() -> str | None:
    """The browser; as root, Debian's chromium and a CJK font are installed when missing (phones
    have CJK fonts; a bare server does not, and its screenshots would show empty boxes)."""
    found = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    fonts = Path("/usr/share/fonts/truetype/wqy").exists()
    if (found is None or not fonts) and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium", "fonts-wqy-zenhei"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            capture_output=True,
            timeout=900,
            check=False,
        )
        found = found or shutil.which("chromium")
    return found


def browse(browser: str, url: str, screenshot: Path, profile: Path, size: str = "390,844") -> str:
    """The DOM after rendering (and a screenshot: 390x844 is an ordinary phone's viewport)."""
    common = [
        browser,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--lang=zh-CN",
    ]
    shot = subprocess.run(
        [*common, f"--window-size={size}", f"--screenshot={screenshot}", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert screenshot.exists() and screenshot.stat().st_size > 5000, shot.stderr[-2000:]
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    return dom.stdout


@pytest.mark.timeout(900)
def test_the_scan_page_in_a_real_browser(fresh_database: str, tmp_path: Path):
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed and cannot be (Debian package chromium, as root)")
    node = start_node(tmp_path, "--workers", "1", "--dsn", fresh_database)
    try:
        admit_over_http(node.url, "88.123.45", 81, "browser-user", "browser-password-1")
        token = requests.post(
            f"{node.url}/identity/token",
            json={"username": "browser-user", "password": "browser-password-1"},
            timeout=30,
        ).json()["data"]["token"]
        created = requests.post(
            f"{node.url}/identityv2/data",
            json={
                "handle": "88.123.45/PUMP-0042",
                "templateVersion": "general-product-1.0",
                "value": [
                    {
                        "index": 2000,
                        "type": "productName",
                        "data": {"format": "string", "value": "离心泵 IS80"},
                    },
                    {"index": 2002, "type": "batchNumber", "data": {"format": "string", "value": "B2026-11"}},
                    {
                        "index": 2004,
                        "type": "manufacturer",
                        "data": {"format": "string", "value": "华东泵业"},
                    },
                ],
            },
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
        assert created["status"] == 1, created
        plain = requests.put(
            f"{node.url}/api/handles/88.123/PLAIN-7",
            json={"values": [{"index": 1, "type": "DESC", "data": "没有模板的标识 / a plain identifier"}]},
            headers=basic(),
            timeout=30,
        )
        assert plain.status_code in (200, 201)
        ARTIFACTS.mkdir(exist_ok=True)
        profile = tmp_path / "chromium-profile"
        templated = browse(
            browser, f"{node.url}/88.123.45/PUMP-0042", ARTIFACTS / "scan-templated.png", profile
        )
        for text in (
            "离心泵 IS80",
            "产品名称",
            "Product name",
            "生产批次",
            "B2026-11",
            "华东泵业",
            "登记时间",
            "88.123.45/PUMP-0042",
        ):
            assert text in templated, text
        assert "<svg" in templated
        untemplated = browse(browser, f"{node.url}/88.123/PLAIN-7", ARTIFACTS / "scan-plain.png", profile)
        assert "没有模板的标识 / a plain identifier" in untemplated and "标识数据" in untemplated
        # the product first, the QR code last (issue 16); at desktop width, in English, and the 404
        assert templated.index("离心泵 IS80") < templated.index("华东泵业") < templated.index("<svg")
        assert "北京时间" in templated and 'role="img"' in templated
        desktop = browse(
            browser, f"{node.url}/88.123.45/PUMP-0042", ARTIFACTS / "scan-desktop.png", profile, "1280,800"
        )
        assert "离心泵 IS80" in desktop
        english = browse(
            browser, f"{node.url}/88.123.45/PUMP-0042?lang=en", ARTIFACTS / "scan-en.png", profile
        )
        assert '<html lang="en">' in english and "Beijing time" in english
        missing = browse(browser, f"{node.url}/88.123.45/NOT-THERE", ARTIFACTS / "scan-notfound.png", profile)
        assert "该标识未在本节点登记" in missing and "假冒产品" in missing
        shots = ["scan-templated", "scan-plain", "scan-desktop", "scan-en", "scan-notfound"]
        print("\nscreenshots: " + ", ".join(str(ARTIFACTS / f"{n}.png") for n in shots))
    finally:
        assert node.stop() == 0
