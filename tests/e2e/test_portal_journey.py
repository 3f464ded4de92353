"""The whole portal and console journey in a real browser (issue 18): Debian's headless Chromium,
driven by Selenium through Debian's chromium-driver, against the real `resolver serve` (2 workers)
over HTTP. An enterprise applies, the operator approves it in the console, the enterprise signs
in, registers an identifier through the form (a field error first), uploads an .xlsx with good
and bad rows and downloads the rejected ones, prints a label sheet (its text, its pages, one QR
decoded), sees its figures move and its audit entries; a second enterprise can neither see nor
change the first one's identifiers by URL or by a replayed form; a form without its CSRF token and
one posted from another site are refused; a session ends with its token's lifetime.

A screenshot of each page (phone width, and desktop for the README's two) and the journey's
timings go to tests/artifacts/portal/."""

from __future__ import annotations

import csv
import http.server
import io
import json
import shutil
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from pypdf import PdfReader

from tests.e2e.test_scan_browser import chromium
from tests.enterprise_helpers import credit_code
from tests.helpers import ADMIN_SECRET, NODE_PREFIX
from tests.nodes import admit_over_http, free_port, start_node

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "portal"
PASSWORD = "journey-password-1"
PHONE, DESKTOP = (390, 844), (1280, 900)


def _driver(download: Path):
    """A headless Chromium under Selenium, downloading into `download`; None without the driver."""
    browser = chromium()
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--lang=zh-CN",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(download),
            "download.prompt_for_download": False,
            "plugins.always_open_pdf_externally": True,
            "intl.accept_languages": "zh-CN,zh",
        },
    )
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download)})
    driver.set_page_load_timeout(60)
    return driver


def _chromedriver_installed() -> bool:
    """Debian's chromium-driver, installed as root when missing (.ci/run installs it too)."""
    if shutil.which("chromedriver") is None:
        import os
        import subprocess

        if os.geteuid() == 0 and shutil.which("apt-get"):
            subprocess.run(
                ["apt-get", "install", "-y", "-q", "chromium-driver"],
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                capture_output=True,
                timeout=900,
                check=False,
            )
    return shutil.which("chromedriver") is not None


class Journey:
    """The browser, the node, and the timings and screenshots of the steps."""

    def __init__(self, driver, url: str, download: Path) -> None:
        self.driver, self.url, self.download = driver, url, download
        self.timings: dict[str, float] = {}
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def step(self, name: str):
        journey = self

        class Timed:
            def __enter__(self):
                self.started = time.perf_counter()

            def __exit__(self, *exc):
                journey.timings[name] = round(time.perf_counter() - self.started, 3)

        return Timed()

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def shot(self, name: str, size: tuple[int, int] = PHONE) -> None:
        self.driver.set_window_size(*size)
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(size[0], max(size[1], min(int(height) + 120, 4000)))
        self.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        self.driver.set_window_size(*PHONE)

    def _settled(self, act) -> Any:
        """`act()` on the page as it is now. Chromium may still swap the document it has just
        loaded (CI51: 'Node with given id does not belong to the document' on a sign-in page the
        driver had reported loaded); then, the address unchanged (nothing was submitted), the
        page is looked at again, within a bound."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

        where = self.driver.current_url
        for attempt in range(10):
            try:
                self.driver.execute_script("return document.readyState")  # the current document
                return act()
            except (StaleElementReferenceException, WebDriverException) as exc:
                stale = isinstance(exc, StaleElementReferenceException) or "belong to the document" in str(
                    exc
                )
                if not stale or self.driver.current_url != where or attempt == 9:
                    raise
                time.sleep(0.2)
        return None

    def fill(self, fields: dict[str, str]) -> None:
        from selenium.webdriver.common.by import By

        def typed() -> None:
            for name, value in fields.items():
                element = self.driver.find_element(By.ID, name)
                element.clear()
                if value:
                    element.send_keys(value)

        self._settled(typed)

    def click(self, css: str) -> None:
        """Click and wait for the page it loads (every click here submits a form or follows a link)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        def clicked() -> Any:
            page = self.driver.find_element(By.TAG_NAME, "html")
            self.driver.find_element(By.CSS_SELECTOR, css).click()
            return page

        page = self._settled(clicked)
        WebDriverWait(self.driver, 60).until(expected_conditions.staleness_of(page))

    def script(self, code: str) -> None:
        """Run `code`, which submits a form, and wait for the page it loads."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        page = self.driver.find_element(By.TAG_NAME, "html")
        self.driver.execute_script(code)
        WebDriverWait(self.driver, 60).until(expected_conditions.staleness_of(page))

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def wait_for(self, check, seconds: float = 30.0, reload: bool = False):
        deadline = time.monotonic() + seconds
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen within {seconds} s:\n{self.text()[:2000]}")
            time.sleep(0.25)
            if reload:
                self.driver.refresh()

    def downloaded(self, suffix: str, seconds: float = 60.0) -> Path:
        def done() -> Path | None:
            files = [p for p in self.download.iterdir() if p.name.endswith(suffix)]
            return files[0] if files and not any(self.download.glob("*.crdownload")) else None

        found = self.wait_for(done, seconds)
        target = found.with_name(f"{time.monotonic_ns()}-{found.name}")
        found.rename(target)
        return target


@pytest.fixture
def journey(fresh_database: str, tmp_path: Path) -> Iterator[Journey]:
    if not _chromedriver_installed():
        pytest.skip("chromium-driver is not installed and cannot be (Debian package, as root)")
    download = tmp_path / "downloads"
    download.mkdir()
    driver = _driver(download)
    if driver is None:
        pytest.skip("Chromium is not installed and cannot be (Debian package chromium, as root)")
    node = start_node(tmp_path, "--workers", "2", "--dsn", fresh_database)
    try:
        yield Journey(driver, node.url, download)
    finally:
        driver.quit()
        node.stop()


def _workbook(path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["handle", "产品名称", "生产批次", "生产日期", "生产企业"])
    for n in range(1, 41):
        sheet.append([f"88.123.77/XL-{n:03d}", f"齿轮 {n}", "B-2026-12", "2026-12-01", "旅程机械有限公司"])
    sheet.append(["88.123.77/XL-BAD", "齿轮", "B-2026-12", "2026-12-32", "旅程机械有限公司"])
    sheet.append(["88.123.78/XL-OTHER", "齿轮", "B-2026-12", "2026-12-01", "别人的前缀"])
    book.save(path)


@pytest.mark.timeout(900)
def test_the_portal_and_console_journey_in_a_real_browser(journey: Journey, tmp_path: Path):
    from selenium.webdriver.common.by import By

    j = journey
    with j.step("apply"):
        j.open("/portal/apply")
        j.shot("01-apply")
        j.fill(
            {
                "name": "旅程机械有限公司",
                "creditCode": credit_code(77),
                "contact_name": "王工",
                "contact_phone": "13900000000",
                "prefix": "88.123.77",
                "username": "journey",
                "password": PASSWORD,
            }
        )
        j.click("form button[type=submit]")
        assert "申请已提交" in j.text()
        j.shot("02-applied")

    with j.step("operator approves"):
        j.open("/console/login")
        j.fill({"identity": f"300:0.NA/{NODE_PREFIX}", "secret": ADMIN_SECRET})
        j.click("form button[type=submit]")
        assert "审核队列" in j.text() and "88.123.77" in j.text()
        j.shot("03-console-queue")
        j.click("button[name=decision][value=approve]")
        headings = [h.text for h in j.driver.find_elements(By.TAG_NAME, "h2")]
        assert not any("88.123.77" in h for h in headings), headings  # out of the queue

    with j.step("sign in"):
        j.open("/portal/login")
        j.fill({"username": "journey", "password": PASSWORD})
        j.click("form button[type=submit]")
        assert "我的标识" in j.text() and "88.123.77" in j.text()
        j.shot("04-identifiers")

    with j.step("register through the form"):
        j.open("/portal/new")
        j.fill({"suffix": "J-0001", "v2000": "", "v2004": "旅程机械有限公司"})
        j.click("#save")
        error = j.driver.find_element(By.ID, "error-v2000").text
        assert "缺少必填的模板条目" in error and "产品名称" in error
        j.shot("05-field-error")
        j.fill({"v2000": "行星齿轮箱 PX-200"})
        j.click("#save")
        assert "登记成功" in j.text() and "行星齿轮箱 PX-200" in j.text()
        j.shot("06-registered")

    with j.step("upload an xlsx and download its rejected rows"):
        sheet = tmp_path / "产品清单.xlsx"
        _workbook(sheet)
        j.open("/portal/upload")
        from selenium.webdriver.support.ui import Select

        Select(j.driver.find_element(By.ID, "template")).select_by_value("general-product-1.0")
        j.driver.find_element(By.ID, "file").send_keys(str(sheet))
        j.shot("07-upload")
        j.click("#send")
        j.wait_for(lambda: "已完成" in j.driver.find_element(By.ID, "state").text, 60)
        assert j.driver.find_element(By.ID, "accepted").text == "40"
        assert j.driver.find_element(By.ID, "rejected").text == "2"
        j.shot("08-upload-done")
        j.driver.find_element(By.ID, "download").click()  # a download: the page stays
        report = j.downloaded(".csv")
        rows = list(csv.reader(io.StringIO(report.read_text("utf-8-sig"))))
        assert rows[0][-1] == "拒绝原因" and {r[0] for r in rows[1:]} == {
            "88.123.77/XL-BAD",
            "88.123.78/XL-OTHER",
        }

    with j.step("print a label sheet"):
        j.open("/portal/labels")
        Select(j.driver.find_element(By.ID, "grid")).select_by_value("3x8")
        j.fill({"first": "XL-001", "last": "XL-040"})
        j.shot("09-labels")
        j.driver.find_element(By.ID, "print").click()  # a download: the page stays
        pdf = j.downloaded(".pdf")
        reader = PdfReader(pdf)
        assert len(reader.pages) == 2  # 40 labels, 24 a page
        first_page = reader.pages[0].extract_text()
        assert "88.123.77/XL-001" in first_page and "齿轮 1" in first_page
        from tests.integration.test_portal_labels import decoded

        codes = decoded(pdf.read_bytes())
        assert f"{j.url}/88.123.77/XL-001" in codes and len(codes) == 24
        j.open("/88.123.77/XL-001")  # what a phone opens when it scans the first label
        assert "齿轮 1" in j.text()
        j.shot("10-scanned-label")

    with j.step("figures move"):
        j.open("/portal/figures")

        def registered() -> bool:
            return int(j.driver.find_element(By.ID, "registrations-30d").text) >= 41

        j.wait_for(registered, 30, reload=True)  # the workers gather counts every 5 s
        j.shot("11-figures")
        j.shot("portal", DESKTOP)

    with j.step("audit entries"):
        j.open("/portal/audit")
        assert "handle.create" in j.text() and "88.123.77/j-0001" in j.text().lower()
        j.shot("12-audit")

    with j.step("templates and search"):
        j.open("/portal/templates")
        assert "general-product-1.0" in j.text()
        j.shot("13-templates")
        j.open("/portal/?prefix=88.123.77&item=batchNumber&value=B-2026-12")
        assert "找到 40 个标识" in j.text()
        j.shot("14-search")

    with j.step("the operator's pages"):
        j.open("/console/node")  # the console session from the approval is still open
        assert "政策门槛" in j.text()
        j.wait_for(
            lambda: j.driver.find_element(By.ID, "registrations-year").text.strip() not in ("", "0"),
            30,
            reload=True,
        )
        j.shot("15-console-node")
        j.shot("console", DESKTOP)
        j.open("/console/enterprises?q=旅程")
        assert "旅程机械有限公司" in j.text() and "88.123.77" in j.text()
        j.shot("16-console-enterprises")
        j.open("/console/audit?handle=88.123.77/J-0001")
        assert "handle.create" in j.text()
        j.shot("17-console-audit")

    with j.step("a second enterprise"):
        admit_over_http(j.url, "88.123.78", 78, "second", PASSWORD)
        j.open("/portal/")
        j.driver.delete_all_cookies()  # the cookies this page sees: the portal's (Path=/portal)
        j.open("/portal/login")
        j.fill({"username": "second", "password": PASSWORD})
        j.click("form button[type=submit]")
        for path in ("/portal/record", "/portal/edit", "/portal/delete"):
            j.open(f"{path}?handle=88.123.77/J-0001")
            assert "不是本企业的标识" in j.text(), path
        j.open("/portal/?prefix=88.123.77")
        assert "88.123.77/J-0001" not in j.text()
        j.shot("18-second-enterprise")
        # a form replayed with the first enterprise's identifier, in the second one's session
        j.open("/portal/labels")
        j.script(
            "const f = document.getElementById('labels-form');"
            "f.querySelector('#handles').value = '88.123.77/J-0001'; f.submit();"
        )
        assert "不是本企业的标识" in j.text()
        j.script(
            "const f = document.createElement('form'); f.method = 'post'; f.action = '/portal/delete';"
            "f.innerHTML = '<input name=handle value=\"88.123.77/J-0001\">';"
            "document.body.appendChild(f); f.submit();"
        )
        assert "CSRF" in j.text()  # no token: refused before anything is looked at

    with j.step("a post from another site"):
        attacker = _attacker_page(j.url)
        try:
            j.driver.get(attacker.url)
            j.wait_for(lambda: "/portal/delete" in j.driver.current_url, 15)
            assert "CSRF" in j.text()  # refused as a cross-site post, whatever the form holds
        finally:
            attacker.stop()

    # the first enterprise's identifier is untouched through all of this
    import requests

    assert requests.get(f"{j.url}/api/handles/88.123.77/J-0001", timeout=30).status_code == 200
    (ARTIFACTS / "timings.json").write_text(json.dumps(j.timings, ensure_ascii=False, indent=1))
    print("journey timings (s):", json.dumps(j.timings, ensure_ascii=False))


class _Attacker:
    def __init__(self, server: socketserver.TCPServer, url: str) -> None:
        self.server, self.url = server, url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _attacker_page(target: str) -> _Attacker:
    """Another site (another port of 127.0.0.1) whose page posts a form to the portal at once."""
    page = (
        "<!doctype html><form id=f method=post action='TARGET/portal/delete'>"
        "<input name=handle value='88.123.77/J-0001'><input name=csrf value='guess'></form>"
        "<script>document.getElementById('f').submit()</script>".replace("TARGET", target)
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

        timeout = 5  # an idle connection is dropped

    port = free_port()
    # threads: a connection the browser opens ahead and leaves idle must not hold up the others
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # localhost, not 127.0.0.1: another site to the browser, as the portal sees it
    return _Attacker(server, f"http://localhost:{port}/")


@pytest.mark.timeout(300)
def test_a_portal_session_ends_with_its_token_in_the_browser(fresh_database: str, tmp_path: Path):
    if not _chromedriver_installed():
        pytest.skip("chromium-driver is not installed and cannot be (Debian package, as root)")
    download = tmp_path / "downloads"
    download.mkdir()
    driver = _driver(download)
    if driver is None:
        pytest.skip("Chromium is not installed and cannot be (Debian package chromium, as root)")
    node = start_node(tmp_path, "--workers", "1", "--dsn", fresh_database, "--token-ttl", "3")
    try:
        j = Journey(driver, node.url, download)
        admit_over_http(node.url, "88.123.79", 79, "brief", PASSWORD)
        j.open("/portal/login")
        j.fill({"username": "brief", "password": PASSWORD})
        j.click("form button[type=submit]")
        assert "我的标识" in j.text()
        time.sleep(4)
        j.open("/portal/")
        assert "企业用户登录" in j.text()  # back at sign-in: the session ended with its token
    finally:
        driver.quit()
        node.stop()
