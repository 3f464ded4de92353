"""What enterprises bring from Excel and WPS, through `resolver import` and `resolver export` as
an operator runs them: workbooks (.xlsx, written here by openpyxl as Excel saves them: numbers
and dates typed as such, several sheets), exports that open in a spreadsheet and import back
unchanged, and rejected-rows reports that are the file to fix and import again."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from tests.bulk_helpers import read_report

pytestmark = pytest.mark.e2e
TEMPLATE = "general-product-1.0"
HEADER = ["handle", "产品名称", "生产企业", "生产日期", "产品型号", "详情链接"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resolver", *args], capture_output=True, text=True, timeout=180
    )


def exported(dsn: str, tmp_path: Path, name: str = "check.jsonl") -> dict[str, list[dict]]:
    """Every handle under 88.123 with its values, timestamps aside."""
    out = tmp_path / name
    done = run("export", "--prefix", "88.123", "-o", str(out), "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    found = {}
    for item in map(json.loads, out.read_text(encoding="utf-8").split("\n")[:-1]):
        values = [{k: v for k, v in value.items() if k != "timestamp"} for value in item["value"]]
        found[item["handle"]] = [item.get("templateVersion"), sorted(values, key=lambda v: v["index"])]
    return found


def workbook(path: Path, sheets: dict[str, list[list[object]]]) -> None:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)


def test_a_workbook_as_excel_saves_it_imports_with_its_numbers_and_dates_as_typed(fresh_database, tmp_path):
    """openpyxl reads a number typed into Excel as a float and a date as a datetime: the cell
    imports as the text the sheet shows (1001, 2026-11-01), not 1001.0 or 2026-11-01 00:00:00."""
    source = tmp_path / "products.xlsx"
    workbook(
        source,
        {
            "螺栓": [HEADER, ["88.123/XL-1", "螺栓 M8", "测试企业", dt.datetime(2026, 11, 1), 1001, None]],
            "螺母": [
                HEADER,
                [
                    "88.123/XL-2",
                    "六角螺母（镀锌）",
                    "测试企业",
                    dt.date(2026, 10, 2),
                    2.5,
                    "https://example.com/2",
                ],
                [None] * 6,  # a row once formatted, now empty
                ["88.123/XL-3", "垫圈", "测试企业", None, "G-01", None],
            ],
        },
    )
    first = run("import", str(source), "--template", TEMPLATE, "--dsn", fresh_database)
    assert first.returncode == 0, first.stderr
    assert "1 rows (1 accepted, 0 rejected)" in first.stderr
    second = run("import", str(source), "--template", TEMPLATE, "--sheet", "螺母", "--dsn", fresh_database)
    assert second.returncode == 0, second.stderr
    assert "2 rows (2 accepted, 0 rejected)" in second.stderr
    stored = exported(fresh_database, tmp_path)
    shown = {h: {v["type"]: v["data"]["value"] for v in values} for h, (_, values) in stored.items()}
    assert stored["88.123/XL-1"][0] == TEMPLATE
    assert shown["88.123/XL-1"] == {
        "productName": "螺栓 M8",
        "manufacturer": "测试企业",
        "productionDate": "2026-11-01",
        "productModel": "1001",
    }
    assert shown["88.123/XL-2"]["productionDate"] == "2026-10-02"
    assert shown["88.123/XL-2"]["productModel"] == "2.5"
    assert shown["88.123/XL-3"]["productModel"] == "G-01"
    missing = run("import", str(source), "--sheet", "垫片", "--dsn", fresh_database)
    assert missing.returncode == 2 and "垫片" in missing.stderr and "螺栓、螺母" in missing.stderr


def test_a_workbook_named_csv_is_read_as_a_workbook_and_an_old_xls_is_refused_with_advice(
    fresh_database, tmp_path
):
    named = tmp_path / "saved-as.csv"
    workbook(named, {"Sheet1": [["handle", "1:URL"], ["88.123/XL-CSV", "https://example.com/x"]]})
    done = run("import", str(named), "--dsn", fresh_database)
    assert done.returncode == 0, done.stderr
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))  # an OLE2 header, as .xls has
    refused = run("import", str(old), "--dsn", fresh_database)
    assert refused.returncode == 2 and ".xlsx" in refused.stderr and "Traceback" not in refused.stderr


def _mixed_rows(tmp_path: Path, dsn: str) -> None:
    """Templated rows (optional items empty, a cell with a formula start, leading zeros), plain
    rows, and a record whose value no cell can hold (a control character, a TTL)."""
    source = tmp_path / "mixed.csv"
    with open(source, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(HEADER)
        for i in range(25):
            writer.writerow(
                [f"88.123/RT-{i:03d}", f"产品{i}", "=测试企业", "2026-11-01" if i % 2 else "", f"00{i}", ""]
            )
    assert run("import", str(source), "--template", TEMPLATE, "--dsn", dsn).returncode == 0
    plain = tmp_path / "plain.jsonl"
    lines = [
        {"handle": "88.123/PLAIN-1", "value": [{"index": 1, "type": "URL", "data": "https://example.com/1"}]},
        {
            "handle": "88.123/ODD-1",
            "value": [
                {"index": 1, "type": "DESC", "data": {"format": "string", "value": "tab\there"}},
                {"index": 2, "type": "URL", "data": "https://example.com/o", "ttl": 60},
            ],
        },
    ]
    plain.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert run("import", str(plain), "--dsn", dsn).returncode == 0


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_export_opens_as_a_sheet_of_named_columns_and_imports_back_unchanged(
    fresh_database, tmp_path, fmt
):
    _mixed_rows(tmp_path, fresh_database)
    before = exported(fresh_database, tmp_path, "before.jsonl")
    sheet = tmp_path / f"export.{fmt}"
    done = run("export", "--prefix", "88.123", "--format", fmt, "-o", str(sheet), "--dsn", fresh_database)
    assert done.returncode == 0, done.stderr
    if fmt == "csv":
        raw = sheet.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only after a byte-order mark
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    else:
        book = openpyxl.load_workbook(sheet, read_only=True)
        rows = [
            ["" if c is None else c for c in row] for row in book.worksheets[0].iter_rows(values_only=True)
        ]
        book.close()
    header = rows[0]
    # the template's items as the template names them, then index:type, then what no cell holds
    assert header[:2] == ["handle", "templateVersion"]
    assert {"产品名称", "生产企业", "生产日期", "产品型号"} <= set(header)
    assert "1:URL" in header and header[-1] == "values"
    by_handle = {row[0]: dict(zip(header, row, strict=False)) for row in rows[1:]}
    assert by_handle["88.123/RT-001"]["产品名称"] == "产品1"
    assert by_handle["88.123/RT-001"]["产品型号"] == "001"
    # a CSV cell a spreadsheet would run is written as text; a workbook's string cell runs nothing
    assert by_handle["88.123/RT-001"]["生产企业"] == ("'=测试企业" if fmt == "csv" else "=测试企业")
    again = run("import", str(sheet), "--dsn", fresh_database)
    assert again.returncode == 0, again.stderr
    assert "27 rows (27 accepted, 0 rejected)" in again.stderr
    assert exported(fresh_database, tmp_path, "after.jsonl") == before


def test_the_report_holds_the_rows_as_they_were_and_imports_once_fixed(fresh_database, tmp_path):
    existing = tmp_path / "existing.csv"
    existing.write_text("handle,产品名称,生产企业\r\n88.123/REP-OLD,旧名称,测试企业\r\n", encoding="utf-8")
    assert run("import", str(existing), "--template", TEMPLATE, "--dsn", fresh_database).returncode == 0
    source = tmp_path / "products.csv"
    rows = [
        ["88.123/REP-1", "螺栓", "测试企业", "2026-11-01", "M8", ""],
        ["88.123/REP-2", "螺母", "测试企业", "2026-13-45", "M6", ""],  # no such date
        ["88.123/REP-3", "", "测试企业", "", "", ""],  # the required name is missing
        ["88.123/REP-4", "垫圈", "测试企业", "", "", "", "多出的一列"],  # one cell too many
        ["88.123/REP-OLD", "新名称", "测试企业", "", "", ""],  # exists with other values
    ]
    with open(source, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    done = run("import", str(source), "--template", TEMPLATE, "--dsn", fresh_database)
    assert done.returncode == 1, done.stderr
    assert "5 rows (1 accepted, 4 rejected)" in done.stderr
    report_path = tmp_path / "products.csv.rejected.csv"
    assert report_path.read_bytes().startswith(b"\xef\xbb\xbf")
    report = read_report(report_path)
    assert [row["handle"] for row in report] == [
        "88.123/REP-2",
        "88.123/REP-3",
        "88.123/REP-4",
        "88.123/REP-OLD",
    ]
    assert [row["line"] for row in report] == ["3", "4", "5", "6"]
    assert "生产日期" in report[0]["reason"]
    assert "产品名称" in report[1]["reason"]
    assert report[2]["reason"] == "列数不对：该行有 7 列，表头有 6 列"
    assert report[3]["reason"] == "标识已存在且内容不同"
    # the row the writer refused is repeated under the file's columns, as it was in the file
    assert {k: report[3][k] for k in HEADER} == dict(zip(HEADER, rows[4], strict=True))
    assert {k: report[0][k] for k in HEADER} == dict(zip(HEADER, rows[1], strict=True))
    # a person fixes the cells in the report and imports the report itself
    with open(report_path, encoding="utf-8-sig", newline="") as given:
        table = list(csv.reader(given))
    table[1][3] = "2026-12-01"
    table[2][1] = "弹簧垫圈"
    table[3] = table[3][:6] + table[3][7:]  # the extra cell removed (the reason column stays)
    del table[4]  # the existing identifier is left as it is
    fixed = tmp_path / "fixed.csv"
    with open(fixed, "w", encoding="utf-8-sig", newline="") as out:
        csv.writer(out, lineterminator="\r\n").writerows(table)
    again = run("import", str(fixed), "--template", TEMPLATE, "--dsn", fresh_database)
    assert again.returncode == 0, again.stderr
    assert "3 rows (3 accepted, 0 rejected)" in again.stderr and "no rows rejected" in again.stderr
    stored = exported(fresh_database, tmp_path)
    assert {"88.123/REP-1", "88.123/REP-2", "88.123/REP-3", "88.123/REP-4"} <= set(stored)
    names = {v["type"]: v["data"]["value"] for v in stored["88.123/REP-3"][1]}
    assert names["productName"] == "弹簧垫圈"


def test_a_workbooks_report_is_a_csv_a_spreadsheet_opens(fresh_database, tmp_path):
    source = tmp_path / "book.xlsx"
    workbook(source, {"Sheet1": [HEADER, ["88.123/XR-1", None, "测试企业", None, 7, None]]})
    done = run("import", str(source), "--template", TEMPLATE, "--dsn", fresh_database)
    assert done.returncode == 1, done.stderr
    report = read_report(tmp_path / "book.xlsx.rejected.csv")
    assert report[0]["handle"] == "88.123/XR-1" and report[0]["产品型号"] == "7"
    assert report[0]["line"] == "2" and "产品名称" in report[0]["reason"]


def test_running_a_finished_import_again_says_so_and_does_not_claim_to_resume(fresh_database, tmp_path):
    source = tmp_path / "once.csv"
    source.write_text("handle,1:URL\n88.123/ONCE-1,https://a\nbad handle,x\n", encoding="utf-8")
    first = run("import", str(source), "--dsn", fresh_database)
    assert first.returncode == 1 and "resumed" not in first.stderr
    again = run("import", str(source), "--dsn", fresh_database)
    assert again.returncode == 1, again.stderr  # its rows were rejected then: still so
    assert "imported before" in again.stderr and "resumed" not in again.stderr
    assert "1 accepted, 1 rejected" in again.stderr
