"""`resolver import` and `resolver export` as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resolver", *args], capture_output=True, text=True, timeout=120
    )


def test_import_then_export(fresh_database, tmp_path):
    source = tmp_path / "products.csv"
    source.write_text(
        "handle,1:URL,2:EMAIL\n88.123/CLI-1,https://example.com/1,a@b.c\n88.123/CLI-2,https://example.com/2,\nbad-handle,x,y\n",
        encoding="utf-8",
    )
    done = run("import", str(source), "--dsn", fresh_database)
    assert done.returncode == 0, done.stderr
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
