"""The cells of the CSV files the node writes: nothing a spreadsheet runs, no raw control bytes,
and an export reads back exactly as it was."""

from __future__ import annotations

import csv
import io

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from resolver.core.csvcells import FORMULA_STARTS, QUOTE, cell, json_cell, neutralise, restore, visible
from resolver.core.handles import has_control_characters


def through_csv(rows: list[list[str]]) -> list[list[str]]:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return list(csv.reader(io.StringIO(out.getvalue(), newline="")))


def test_formula_cells_get_a_quote_in_front():
    assert neutralise('=HYPERLINK("http://evil.example","x")') == '\'=HYPERLINK("http://evil.example","x")'
    for start in "=+-@\t\r":
        assert neutralise(start + "1") == QUOTE + start + "1"
    assert neutralise("-1") == "'-1"  # a negative number too: the cost of the rule


def test_a_cell_that_starts_with_a_quote_gets_one_more_so_that_restoring_is_unambiguous():
    assert neutralise("'quoted") == "''quoted"
    assert restore("''quoted") == "'quoted"
    assert restore("'=1") == "=1"


def test_other_cells_are_written_as_they_are():
    for text in ("", "88.123/ABC-1", "a=b", " =1", "[1,2]", "产品", "x'"):
        assert neutralise(text) == text and restore(text) == text


def test_control_characters_are_shown_not_written():
    assert visible("88.123/NUL\x00X") == "88.123/NUL\\x00X"
    assert visible("\t\r\n\x7f\x85\x9f") == "\\x09\\x0d\\x0a\\x7f\\x85\\x9f"
    assert visible("back\\slash 𝔘") == "back\\slash 𝔘"
    assert cell("\t=1") == "\\x09=1"  # shown, the tab no longer starts a formula
    assert cell("=1\x00") == "'=1\\x00"


@given(st.text())
@example("'")
@example("''=")
@example("=")
@example("")
def test_restore_undoes_neutralise_exactly(text):
    assert restore(neutralise(text)) == text
    assert not neutralise(text).startswith(tuple(FORMULA_STARTS))


@given(st.lists(st.lists(st.text(), min_size=1, max_size=4), min_size=1, max_size=5))
def test_neutralised_rows_survive_a_csv_file(rows):
    written = through_csv([[neutralise(text) for text in row] for row in rows])
    assert [[restore(text) for text in row] for row in written] == rows
    for row in written:
        assert not any(text.startswith(tuple(FORMULA_STARTS)) for text in row)


@given(st.text())
def test_a_written_cell_holds_no_control_characters_and_nothing_a_spreadsheet_runs(text):
    written = cell(text)
    assert not has_control_characters(written)
    assert not written.startswith(tuple(FORMULA_STARTS))
    if not has_control_characters(text):
        assert restore(written) == text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)


@given(st.lists(JSON, max_size=4))
@example(["del\x7f", {"c1\x85": "nul\x00 tab\t"}])
def test_json_cells_escape_control_characters_that_json_reads_back_as_they_were(values):
    written = json_cell(orjson.dumps(values))
    assert not has_control_characters(written)
    assert not written.startswith(tuple(FORMULA_STARTS))
    assert orjson.loads(restore(written)) == values
