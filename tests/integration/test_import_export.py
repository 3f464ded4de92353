"""Bulk import (with a report of rejected rows, interrupted and resumed) and export."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing

import asyncpg
import pytest

from resolver.bulk.importer import Importer, export
from resolver.bulk.userfiles import RefusedFile
from resolver.core.errors import HandleError
from resolver.core.templates import pick_template
from tests.bulk_helpers import read_report
from tests.enterprise_helpers import admit


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["handle", "productName", "manufacturer", "productionDate", "URL"])
        writer.writerows(rows)


def write_rows(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)


def good(i, prefix="88.123"):
    return [f"{prefix}/IMP-{i:05d}", f"产品{i}", "测试企业", "2026-11-01", f"https://example.com/p/{i}"]


BAD_ROWS = {
    ("88.123/BAD-DATE", "螺栓", "测试企业", "2026-13-45", ""): "生产日期",
    ("88.123/NO-NAME", "", "测试企业", "", ""): "产品名称",
    ("99.9/ELSEWHERE", "螺栓", "测试企业", "", ""): "不在本节点",
    # a bare prefix names its prefix handle (Util.convertSlashlessHandleToZeroNaHandle): not ours
    ("no-slash", "螺栓", "测试企业", "", ""): "不在本节点",
    ("no slash", "螺栓", "测试企业", "", ""): "各段以 '.' 分隔",  # the importer reports in Chinese
}


async def import_file(config, path, **kwargs):
    conn = await asyncpg.connect(config.dsn)
    try:
        return await Importer(config, conn, actor="import:test").run(
            path, template_version="general-product-1.0", **kwargs
        )
    finally:
        await conn.close()


def fail_at_chunk(monkeypatch, number):
    """Make the `number`th chunk written fail as if the machine went down; returns the real writer."""
    original = Importer.write_chunk
    calls = {"n": 0}

    async def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == number:
            raise ConnectionError("the machine went down")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Importer, "write_chunk", failing)
    return original


async def count(config, sql, *args):
    conn = await asyncpg.connect(config.dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


@pytest.mark.parametrize("start", ["fork", "spawn"])
async def test_good_and_bad_rows_with_a_report(client, config, tmp_path, monkeypatch, start):
    # fork: chunks travel in shared memory; spawn (where fork is missing): through the pipe
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: [start])
    rows = [good(i) for i in range(50)] + [list(r) for r in BAD_ROWS] + [good(3)]
    source = tmp_path / "products.csv"
    write_csv(source, rows)
    result = await import_file(config, source, chunk_rows=20)
    # the repeated handle (same content as in an earlier chunk) counts as accepted, not rejected
    assert (result.rows, result.accepted, result.rejected) == (len(rows) + 1, 51, len(BAD_ROWS))
    lines = list(read_report(result.report))
    assert len(lines) == len(BAD_ROWS)
    reasons = {line["handle"]: line["reason"] for line in lines}
    for row, fragment in BAD_ROWS.items():
        assert fragment in reasons[row[0]], reasons
    assert (
        await count(
            config, "select count(*) from handles where prefix = '88.123' and key like '88.123/imp-%'"
        )
        == 50
    )
    resolved = await (await client.get("/api/handles/88.123/IMP-00007")).json()
    assert {v["index"] for v in resolved["values"]} == {1001, 2000, 2003, 2004, 2009}
    assert (
        await count(config, "select count(*) from search_terms where term = 'url=https://example.com/p/7'")
        == 1
    )
    assert await count(config, "select count(*) from audit where operation = 'import.chunk'") >= 3


@pytest.mark.parametrize("writers", [1, 2])
async def test_interrupted_import_resumes_without_duplicates_or_losses(
    config, tmp_path, monkeypatch, writers
):
    rows = (
        [good(i) for i in range(100)]
        + [["88.123/BAD-DATE", "螺栓", "测试企业", "2026-13-45", ""]]
        + [good(i) for i in range(100, 130)]
    )
    source = tmp_path / "big.csv"
    write_csv(source, rows)
    original = fail_at_chunk(monkeypatch, 3)
    with pytest.raises(ConnectionError):
        await import_file(config, source, chunk_rows=40, writers=writers)
    # two chunks are written at once: the fourth may have committed beside the failed third
    assert await count(config, "select count(*) from handles where key like '88.123/imp-%'") in (80, 110)
    monkeypatch.setattr(Importer, "write_chunk", original)
    result = await import_file(config, source, chunk_rows=40, writers=writers)
    assert result.resumed_from == 81  # two chunks of 40 rows after the header line
    assert (result.accepted, result.rejected) == (130, 1)
    assert await count(config, "select count(*) from handles where key like '88.123/imp-%'") == 130
    report = read_report(result.report)
    assert [line["handle"] for line in report] == ["88.123/BAD-DATE"]
    again = await import_file(config, source, chunk_rows=40)  # a finished import is not redone
    assert (again.accepted, again.rejected) == (130, 1)


async def test_a_failed_import_ends_its_reader_process_at_once(config, tmp_path, monkeypatch):
    """The reader, far ahead and waiting for a free chunk slot, stops as soon as the writer fails;
    it is not left blocked until the importer gives up waiting and kills it."""
    source = tmp_path / "long.csv"
    write_csv(source, [good(i) for i in range(2000)])  # 50 chunks of 40 rows
    fail_at_chunk(monkeypatch, 2)
    with pytest.raises(ConnectionError):
        await import_file(config, source, chunk_rows=40)
    assert multiprocessing.active_children() == []  # joined: it ended by itself, not killed
    assert await count(config, "select count(*) from handles where key like '88.123/imp-%'") == 40


async def test_imports_are_refused_under_a_prefix_that_is_not_enabled(client, config, tmp_path):
    await admit(client, "88.123.45", 50)
    await client.put(
        "/admin/prefixes/88.123.45/state",
        json={"state": 0},
        headers=__import__("tests.helpers", fromlist=["basic"]).basic(),
    )
    source = tmp_path / "disabled.csv"
    write_csv(source, [good(1, "88.123.45")])
    result = await import_file(config, source)
    assert (result.accepted, result.rejected) == (0, 1)


async def test_json_lines_and_export_round_trip(config, tmp_path):
    source = tmp_path / "items.jsonl"
    items = [
        {
            "handle": f"88.123/J-{i}",
            "templateVersion": "general-product-1.0",
            "value": [
                {"index": 2000, "type": "productName", "data": {"format": "string", "value": f"产品{i}"}},
                {"index": 2004, "type": "manufacturer", "data": {"format": "string", "value": "厂"}},
            ],
        }
        for i in range(5)
    ]
    source.write_text(
        "\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n{not json}\n", encoding="utf-8"
    )
    conn = await asyncpg.connect(config.dsn)
    try:
        result = await Importer(config, conn).run(source)
        assert (result.accepted, result.rejected) == (5, 1)
        out = io.StringIO()
        assert await export(config, conn, "88.123", out) >= 5
        exported = [json.loads(line) for line in out.getvalue().splitlines()]
        mine = {e["handle"]: e for e in exported if e["handle"].startswith("88.123/J-")}
        assert mine["88.123/J-3"]["templateVersion"] == "general-product-1.0"
        assert [v["data"]["value"] for v in mine["88.123/J-3"]["value"]] == ["产品3", "厂"]
        # what export writes, import reads: into a fresh prefix it would be accepted as identical
        copy = tmp_path / "exported.jsonl"
        copy.write_text(out.getvalue(), encoding="utf-8")
        again = await Importer(config, conn).run(copy)
        assert again.rejected == 0 and again.accepted == len(exported)
    finally:
        await conn.close()


async def test_existing_identifiers_are_kept_identical_ones_accepted_different_ones_reported(
    config, tmp_path
):
    first = tmp_path / "first.csv"
    write_csv(first, [good(i, "88.123") for i in range(10)])
    assert (await import_file(config, first)).accepted == 10
    changed = good(4)
    changed[1] = "改过的名称"
    second = tmp_path / "second.csv"
    # new rows first, so that the chunk's fast COPY is attempted and refused mid-way
    write_csv(second, [good(i) for i in range(10, 15)] + [good(2), changed])
    result = await import_file(config, second)
    assert (result.accepted, result.rejected) == (6, 1)
    report = list(read_report(result.report))
    assert [(r["handle"], r["reason"]) for r in report] == [("88.123/IMP-00004", "标识已存在且内容不同")]
    assert await count(config, "select count(*) from handles where key like '88.123/imp-%'") == 15
    name = await count(config, "select vals::text from handles where key = '88.123/imp-00004'")
    assert "产品4" in name and "改过的名称" not in name
    # the new rows of the refused chunk were written once, with their reverse-lookup terms
    terms = await count(
        config, "select string_agg(term, ' ' order by term) from search_terms where key like '88.123/imp-%'"
    )
    assert terms == " ".join(sorted(f"url=https://example.com/p/{i}" for i in range(15))), terms


async def test_cells_that_need_escaping_are_stored_exactly_as_written(config, tmp_path):
    # The reader builds binary COPY data itself: quotes, backslashes, commas, tabs and
    # characters outside the BMP must arrive byte for byte, in the stored values and the terms.
    tricky = 'a "quoted", back\\slash \\N \\. 𝔘 name'
    url = 'https://example.com/p?q=a\\b&x="y"'
    source = tmp_path / "tricky.csv"
    write_csv(source, [["88.123/ESC-\\1", tricky, "测试企业", "", url]])
    jsonl = tmp_path / "tricky.jsonl"
    jsonl.write_text(
        json.dumps(
            {
                "handle": "88.123/ESC-2",
                # not a URL: URL values may not hold control characters (they become Location headers)
                "value": [
                    {"index": 1, "type": "CHECKSUM", "data": {"format": "string", "value": "x\ty\nz\\"}}
                ],
            }
        )
        + "\n",
        encoding="utf-8",
    )
    assert (await import_file(config, source)).accepted == 1
    conn = await asyncpg.connect(config.dsn)
    try:
        assert (await Importer(config, conn).run(jsonl)).accepted == 1
        stored = json.loads(
            await conn.fetchval("select vals::text from handles where key = '88.123/esc-\\1'")
        )
        assert (
            await conn.fetchval("select handle from handles where key = '88.123/esc-\\1'") == "88.123/ESC-\\1"
        )
        assert [(v["index"], v["type"], v["data"]) for v in stored] == [
            (1001, "TEMPLATE", {"format": "string", "value": "general-product-1.0"}),
            (2000, "productName", {"format": "string", "value": tricky}),
            (2004, "manufacturer", {"format": "string", "value": "测试企业"}),
            (2009, "URL", {"format": "string", "value": url}),
        ]
        assert all(v["ttl"] == 86400 and v["timestamp"] for v in stored)
        terms = await conn.fetch("select key, term from search_terms where key like '88.123/esc-%'")
        assert sorted(tuple(t) for t in terms) == [
            ("88.123/esc-2", "checksum=x\ty\nz\\"),
            ("88.123/esc-\\1", f"url={url}"),
        ]
        plain = json.loads(await conn.fetchval("select vals::text from handles where key = '88.123/esc-2'"))
        assert plain[0]["data"]["value"] == "x\ty\nz\\"
    finally:
        await conn.close()


async def test_a_csv_without_template_that_names_one_is_checked_against_it(config, tmp_path):
    source = tmp_path / "named.csv"
    source.write_text(
        "handle,1001:TEMPLATE,2004:manufacturer\n"
        "88.123/NAMED-1,general-product-1.0,测试企业\n"  # the template requires 产品名称 (2000)
        "88.123/NAMED-2,,测试企业\n",  # no template named: a plain record
        encoding="utf-8",
    )
    conn = await asyncpg.connect(config.dsn)
    try:
        result = await Importer(config, conn).run(source)
        assert (result.accepted, result.rejected) == (1, 1)
        report = list(read_report(result.report))
        assert report[0]["handle"] == "88.123/NAMED-1" and "产品名称" in report[0]["reason"]
    finally:
        await conn.close()


async def test_a_row_naming_a_template_that_does_not_exist_is_reported_as_the_registry_reports_it(
    config, tmp_path
):
    source = tmp_path / "unknown.jsonl"
    url = {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://example.com/x"}}
    source.write_text(
        json.dumps({"handle": "88.123/NO-TEMPLATE-1", "templateVersion": "no-such-1.0", "value": [url]})
        + "\n",
        encoding="utf-8",
    )
    conn = await asyncpg.connect(config.dsn)
    try:
        result = await Importer(config, conn).run(source)
        assert (result.accepted, result.rejected) == (0, 1)
        report = list(read_report(result.report))
        # the registry's own lookup (resolver.core.templates.pick_template), not a copy of it
        with pytest.raises(HandleError) as missing:
            pick_template({}, "88.123", "no-such-1.0")
        assert report[0]["handle"] == "88.123/NO-TEMPLATE-1" and report[0]["reason"] == missing.value.zh
    finally:
        await conn.close()


async def test_two_columns_for_one_index_are_refused_before_anything_is_written(config, tmp_path):
    source = tmp_path / "twice.csv"
    source.write_text("handle,productName,产品名称\n88.123/TWICE-1,a,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="同一个索引 2000"):
        await import_file(config, source)
    assert await count(config, "select count(*) from handles where key = '88.123/twice-1'") == 0


async def test_a_resumed_import_does_not_append_to_a_report_replaced_by_a_link(config, tmp_path, monkeypatch):
    source = tmp_path / "big.csv"
    write_csv(
        source, [good(i) for i in range(60)] + [["88.123/BAD-DATE", "螺栓", "测试企业", "2026-13-45", ""]]
    )
    original = fail_at_chunk(monkeypatch, 2)
    with pytest.raises(ConnectionError):
        await import_file(config, source, chunk_rows=40)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    report = tmp_path / "big.csv.rejected.csv"
    report.unlink()
    report.symlink_to(victim)
    monkeypatch.setattr(Importer, "write_chunk", original)
    with pytest.raises(RefusedFile, match="不写入"):
        await import_file(config, source, chunk_rows=40)
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert await count(config, "select count(*) from handles where key like '88.123/imp-%'") == 40
    report.unlink()  # the operator moves the link away: the import resumes where it stopped
    result = await import_file(config, source, chunk_rows=40)
    assert (result.resumed_from, result.accepted, result.rejected) == (41, 60, 1)
    assert [line["handle"] for line in read_report(report)] == ["88.123/BAD-DATE"]


async def test_an_import_that_stopped_in_its_first_chunk_resumes_into_the_same_report(
    config, tmp_path, monkeypatch
):
    source = tmp_path / "first.csv"
    write_csv(
        source, [["88.123/BAD-DATE", "螺栓", "测试企业", "2026-13-45", ""], *(good(i) for i in range(10))]
    )
    original = fail_at_chunk(monkeypatch, 1)
    with pytest.raises(ConnectionError):
        await import_file(config, source)
    monkeypatch.setattr(Importer, "write_chunk", original)
    result = await import_file(config, source)
    assert (result.accepted, result.rejected) == (10, 1)
    # one header: the second run appended to the report the first one had begun
    rows = list(csv.reader(io.StringIO(result.report.read_text(encoding="utf-8-sig"))))
    assert [row[0] for row in rows] == ["handle", "88.123/BAD-DATE"]
    assert rows[1][-1].startswith("第 2 行：")


async def test_a_csv_export_imports_back_unchanged(config, tmp_path):
    """`export --format csv` neutralises formula cells and escapes control characters; the
    importer undoes exactly that, so every row comes back as it was."""
    source = tmp_path / "odd.jsonl"
    texts = ["=1+1", "'quoted", "''twice", "@x", "-1", "+1", "del\x7f c1\x85", "\ttab"]
    source.write_text(
        "".join(
            json.dumps({"handle": f"88.123/ODD-{i}", "value": [{"index": 1, "type": "DESC", "data": text}]})
            + "\n"
            for i, text in enumerate(texts)
        ),
        encoding="utf-8",
    )
    conn = await asyncpg.connect(config.dsn)
    try:
        assert (await Importer(config, conn).run(source)).accepted == len(texts)
        before = await conn.fetch(
            "select key, vals::text from handles where key like '88.123/odd-%' order by key"
        )
        exported = tmp_path / "odd.csv"
        out = io.StringIO(newline="")
        assert await export(config, conn, "88.123", out, "csv") >= len(texts)
        exported.write_bytes(out.getvalue().encode())
        again = await Importer(config, conn).run(exported)
        assert again.rejected == 0 and again.accepted >= len(texts)
        after = await conn.fetch(
            "select key, vals::text from handles where key like '88.123/odd-%' order by key"
        )
        assert after == before
    finally:
        await conn.close()


async def test_the_export_format_is_read_with_the_quotes_export_adds_taken_off(config, tmp_path):
    """In a `handle,values` file (what export writes) one leading quote of a cell is export's
    neutralisation and is taken off; in any other CSV a leading quote is data."""
    exported = tmp_path / "exported.csv"
    value = '[{"index":1,"type":"DESC","data":"\'kept"}]'
    write_rows(exported, [["handle", "values"], ["'88.123/Q-1", f"'{value}"]])
    plain = tmp_path / "plain.csv"
    write_rows(plain, [["handle", "1:DESC"], ["88.123/Q-2", "'kept"]])
    conn = await asyncpg.connect(config.dsn)
    try:
        for path in (exported, plain):
            result = await Importer(config, conn).run(path)
            assert (result.accepted, result.rejected) == (1, 0)
        stored = {
            row["key"]: json.loads(row["vals"])[0]["data"]["value"]
            for row in await conn.fetch(
                "select key, vals::text as vals from handles where key like '88.123/q-%'"
            )
        }
        assert stored == {"88.123/q-1": "'kept", "88.123/q-2": "'kept"}
    finally:
        await conn.close()


async def test_a_report_that_is_the_imported_file_itself_is_refused(config, tmp_path):
    source = tmp_path / "rows.csv"
    write_csv(source, [good(1)])
    before = source.read_bytes()
    link = tmp_path / "link.csv"
    link.symlink_to(source)
    # the file itself, by another name, and the link it is read through
    for report in (source, tmp_path / "." / "rows.csv", link):
        with pytest.raises(RefusedFile, match="就是要导入的文件"):
            await import_file(config, link, report=report)
    assert source.read_bytes() == before and link.is_symlink()
    assert await count(config, "select count(*) from handles where key like '88.123/imp-%'") == 0


async def test_a_row_with_a_nul_in_a_value_is_reported_and_the_good_rows_are_written(config, tmp_path):
    # a NUL cannot be stored in a search term (Postgres text); the HTTP APIs refuse it anywhere,
    # so the importer refuses it too, in a searchable value or not, as one invalid row
    source = tmp_path / "nul.jsonl"
    rows = [
        {
            "handle": "88.123/NUL9",
            "value": [
                {"index": 9, "type": "CHECKSUM", "data": {"format": "string", "value": "sha256:ab\x00cd"}}
            ],
        },
        {"handle": "88.123/NUL-DESC", "value": [{"index": 3, "type": "DESC", "data": "a\x00b"}]},
        {"handle": "88.123/NUL-GOOD", "value": [{"index": 9, "type": "CHECKSUM", "data": "sha256:abcd"}]},
    ]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert "\\u0000" in source.read_text(encoding="utf-8")
    conn = await asyncpg.connect(config.dsn)
    try:
        for _ in range(2):  # a re-run behaves the same: nothing was left half-done
            result = await Importer(config, conn).run(source)
            assert (result.accepted, result.rejected) == (1, 2)
            report = list(read_report(result.report))
            assert {line["handle"] for line in report} == {"88.123/NUL9", "88.123/NUL-DESC"}
            assert all("NUL" in line["reason"] for line in report), report
        assert await conn.fetchval("select count(*) from handles where key like '88.123/nul%'") == 1
        assert (
            await conn.fetchval("select count(*) from search_terms where term = 'checksum=sha256:abcd'") == 1
        )
    finally:
        await conn.close()


async def test_imported_registrations_are_counted_as_the_apis_count_them(client, config, tmp_path):
    """Daily counts of an import are labelled as the APIs label theirs (services/statistics.py
    ServedPrefixes.label): a handle under a sub-prefix of an allocated prefix counts for that
    prefix, one under the node prefix for the node prefix; no row per handle prefix."""
    await admit(client, "88.123.45", 11)
    path = tmp_path / "mixed.csv"
    write_csv(path, [good(1, "88.123.45"), good(2, "88.123.45.6"), good(3, "88.123.45.6"), good(4)])
    result = await import_file(config, path)
    assert result.accepted == 4 and result.rejected == 0
    conn = await asyncpg.connect(config.dsn)
    try:
        rows = await conn.fetch(
            "select prefix, sum(registrations)::int as n from daily_counts"
            " where registrations > 0 group by prefix order by prefix"
        )
    finally:
        await conn.close()
    assert {r["prefix"]: r["n"] for r in rows} == {"88.123": 1, "88.123.45": 3}
