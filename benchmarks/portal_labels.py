"""What the portal's heavy pages cost (issue 18): a 10,000-label sheet, whether it stops the node,
and an .xlsx upload's rate. One node of one worker
(the worst case: the sheet and the resolutions share one event loop) over an embedded Postgres,
--identifiers registered through batchCreate; the portal signs in as a browser does (CSRF cookie,
form), then asks for the label sheet of all of them while another thread resolves distinct
handles over the Handle API. Reported: the sheet's time, size and pages; resolution latency
(median, p99, max) before and while the sheet is drawn; then an .xlsx of --identifiers new rows
uploaded through the portal, its rows per second from the upload to the last count. Only
127.0.0.1; every loop is bounded.

Usage: python benchmarks/portal_labels.py [--identifiers 10000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import base64
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests

from benchmarks.harness import SECRET, embedded_database, start_node, stop
from benchmarks.signed_writes import enterprise, ok
from tests.enterprise_helpers import product

PASSWORD = "benchmark-pass-1"


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html[:300]
    return found.group(1)


def resolve_for(url: str, handles: list[str], seconds: float, offset: int) -> list[float]:
    """Latencies (ms) of resolutions of distinct handles, one after another, for `seconds`."""
    session = requests.Session()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    n = offset
    while time.monotonic() < deadline:
        started = time.perf_counter()
        answer = session.get(f"{url}/api/handles/{handles[n % len(handles)]}", timeout=30)
        latencies.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text[:200]
        n += 1
    return latencies


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"n={len(ordered)} median {statistics.median(ordered):.2f} ms, p99 {p99:.2f} ms, max {ordered[-1]:.1f} ms"


def upload(browser: requests.Session, url: str, rows: int, workdir: Path) -> str:
    """Upload an .xlsx of `rows` new identifiers and wait for its counts; its rate."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["handle", "产品名称", "生产批次", "生产日期", "生产企业"])
    for n in range(rows):
        sheet.append([f"88.123.45/U-{n:06d}", f"齿轮 {n}", "B-1", "2026-12-01", "测试企业"])
    path = workdir / "upload.xlsx"
    book.save(path)
    form = {
        "csrf": csrf(browser.get(f"{url}/portal/upload", timeout=10).text),
        "template": "general-product-1.0",
    }
    started = time.perf_counter()
    with open(path, "rb") as data:
        sent = browser.post(
            f"{url}/portal/upload", data=form, files={"file": ("upload.xlsx", data)}, timeout=120
        )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        page = browser.get(sent.url, timeout=30)
        if "Refresh" not in page.headers:
            break
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    accepted = re.search(r'id="accepted">(\d+)<', page.text)
    assert accepted and int(accepted.group(1)) == rows, page.text[:500]
    return (
        f"{rows} rows in {seconds:.1f} s ({rows / seconds:.0f} rows/s, {path.stat().st_size / 2**20:.2f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--identifiers", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with embedded_database("portal-labels-") as (workdir, dsn):
        process, url = start_node(
            workdir, "--dsn", dsn, "--rate-per-address", "0", "--rate-per-credential", "0", workers=1
        )
        try:
            admin = requests.Session()
            user = quote("300:0.NA/88.123", safe="")
            admin.headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{SECRET}".encode()).decode()
            token = enterprise(admin, url, "88.123.45", 45)
            handles = [f"88.123.45/L-{n:06d}" for n in range(args.identifiers)]
            for start in range(0, len(handles), 2000):
                items = [
                    product(h, name=f"不锈钢六角螺栓 M8×{n % 90 + 10}")
                    for n, h in enumerate(handles[start : start + 2000], start)
                ]
                ok(
                    requests.post(
                        f"{url}/identityv2/data/batchCreate",
                        json=items,
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=120,
                    )
                )
            browser = requests.Session()
            login = browser.get(f"{url}/portal/login", timeout=10).text
            signed = browser.post(
                f"{url}/portal/login",
                data={"csrf": csrf(login), "username": "u45", "password": PASSWORD},
                timeout=10,
            )
            assert "我的标识" in signed.text, signed.text[:300]
            form = {
                "csrf": csrf(browser.get(f"{url}/portal/labels", timeout=10).text),
                "grid": "4x10",
                "prefix": "88.123.45",
                "first": "L-000000",
                "last": "",
            }
            resolve_for(url, handles, 1.0, 0)  # warm the connection and the code paths
            before = resolve_for(url, handles, args.seconds, 0)
            result: dict[str, object] = {}

            def draw() -> None:
                started = time.perf_counter()
                answer = browser.post(f"{url}/portal/labels", data=form, timeout=600)
                result["seconds"] = time.perf_counter() - started
                result["status"], result["bytes"] = answer.status_code, len(answer.content)

            sheet = threading.Thread(target=draw)
            sheet.start()
            during: list[float] = []
            while sheet.is_alive():
                during += resolve_for(url, handles, 0.5, len(during) + 7)
            sheet.join()
            assert result["status"] == 200, result
            print(f"identifiers: {args.identifiers}, grid 4x10, one worker")
            print(f"label sheet: {result['seconds']:.2f} s, {int(result['bytes']) / 2**20:.1f} MiB")
            print(f"resolutions before the sheet: {summary(before)}")
            print(f"resolutions while it is drawn: {summary(during)}")
            print(f"xlsx upload: {upload(browser, url, args.identifiers, workdir)}")
        finally:
            stop(process)


if __name__ == "__main__":
    main()
