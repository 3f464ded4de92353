"""Reading an import file's rows: CSV (columns by index and type, by a template's items, or a
column of JSON arrays) and JSON Lines, each row as its values, its values already in stored form,
or the reason it is rejected. No database: this runs in the reader process."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import NamedTuple, TextIO

import orjson

from resolver.bulk.columns import SECRET_TYPE, SECRETS_REFUSED, Shape
from resolver.bulk.encodings import undecodable
from resolver.bulk.resume import Skip
from resolver.config import Limits
from resolver.core.csvcells import restore
from resolver.core.errors import RC, HandleError, in_chinese
from resolver.core.handles import fold, has_control_characters
from resolver.core.search import MAX_TERM_LENGTH, term_fits
from resolver.core.templates import (
    TEMPLATE_INDEX,
    Template,
    check_text,
    missing_required,
    reference_value,
)
from resolver.core.values import DEFAULT_TTL, StoredValue, parse_values


class Prepared(NamedTuple):
    """A row's values already in their stored form (the reader's fast path for CSV columns)."""

    json: bytes  # the JSON array of stored values
    terms: list[str]  # its reverse-lookup terms, without repeats


# What the row readers yield for a data row: its values, its prepared values, or why it is rejected.
RowItem = list[StoredValue] | Prepared | str


def refuse_secrets(values: list[StoredValue]) -> list[StoredValue]:
    """An import row's values, unless one is a secret key (the importer writes rows as they are:
    a secret would be stored in clear, or a hash with parameters the node did not choose)."""
    if any(fold(v["type"]) == SECRET_TYPE for v in values):
        raise HandleError(RC.INVALID_VALUE, SECRETS_REFUSED)
    return values


def jsonl_rows(
    text: TextIO, limits: Limits, skip: Skip, encoding: str = "utf-8-sig"
) -> Iterator[tuple[int, str, RowItem, str]]:
    """(line number, handle as written, values or an error, the line) of the rows of a JSON Lines
    file: one `{"handle": ..., "value": [...], "templateVersion": ...}` a line."""
    line = 0
    while True:
        row = text.readline()
        if not row:
            return
        line += 1
        if line in skip:
            continue
        if not row.strip():
            continue
        refusal = undecodable([row], line, encoding)
        if refusal is not None:
            yield line, "", refusal, row
            continue
        try:
            item = orjson.loads(row)
            if not isinstance(item, dict) or not isinstance(item.get("handle"), str):
                raise ValueError('每行应为 {"handle": ..., "value": [...]}')
            handle = item["handle"]
        except (ValueError, orjson.JSONDecodeError) as exc:
            yield line, "", f"不是有效的 JSON 对象：{exc}", row
            continue
        raw_values = item.get("value", item.get("values"))
        version = item.get("templateVersion")
        if not isinstance(raw_values, list):
            yield line, handle, "缺少标识值数组 value", row
            continue
        try:
            extra = [reference_value(version)] if isinstance(version, str) and version else []
            values = refuse_secrets(parse_values([*raw_values, *extra], limits, datetime.now(UTC)))
        except HandleError as exc:
            yield line, handle, in_chinese(exc), row
            continue
        yield line, handle, values, row


def csv_cells(text: TextIO) -> Iterator[tuple[int, list[str] | str]]:
    """(line, cells) of a CSV file's rows, the header first (line 1); a row the csv module cannot
    read comes as the reason."""
    reader = csv.reader(text)
    line = 0
    while True:
        line += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, f"该行无法读取：{exc}"
            continue
        yield line, cells


def sheet_rows(
    rows: Iterator[tuple[int, list[str] | str]],
    template_version: str | None,
    stamp: str,
    *,
    limits: Limits,
    templates: Mapping[tuple[str, str], Template],
    search_types: frozenset[str],
    skip: Skip,
    encoding: str | None = "utf-8-sig",
    neutralised: bool = True,
) -> Iterator[tuple[int, str, RowItem, list[str]]]:
    """(line number, handle as written, values or an error, the row's cells) of the data rows of
    a sheet (CSV or .xlsx): a `handle` column, then the columns `resolver.bulk.columns` reads.
    `neutralised`: the node writes this format's cells neutralised (CSV, not workbooks)."""
    first = next(rows, None)
    if first is None:
        return
    header = first[1]
    if isinstance(header, str):
        raise ValueError(f"表头无法读取：{header}")
    if encoding is not None:
        refusal = undecodable(header, 1, encoding)
        if refusal is not None:
            raise ValueError(refusal)
    shape = Shape.from_header(header, template_version, templates)
    width = shape.width
    version_at, values_at = shape.version_at, shape.values_at
    restoring = neutralised and shape.node_written
    # Each row's stored JSON is put together from pieces built once per (index, type) and cells
    # are checked against their template items as they are read; only a row that carries JSON
    # values, or an index-1001 column without a template, goes through the general path.
    tail = b'},"ttl":%d,"timestamp":%s}' % (DEFAULT_TTL, orjson.dumps(stamp))
    heads: dict[tuple[int, str], bytes] = {}
    searchable = {}
    references: dict[str, bytes] = {}
    max_bytes = limits.max_value_bytes
    now = datetime.now(UTC)
    for line, cells in rows:
        if line in skip:
            continue
        if isinstance(cells, str):
            yield line, "", cells, []
            continue
        if not any(cells):
            continue  # an empty row (spreadsheets keep those that were once formatted)
        if encoding is not None:
            refusal = undecodable(cells, line, encoding)
            if refusal is not None:
                yield line, "", refusal, cells
                continue
        original = cells
        if restoring:
            cells = [restore(c) for c in cells]
        handle = cells[0].strip()
        if len(cells) != width and (len(cells) < width or any(cells[width:])):
            yield line, handle, f"列数不对：该行有 {len(cells)} 列，表头有 {width} 列", original
            continue
        version = (cells[version_at].strip() if version_at is not None else "") or shape.default_version
        plan = shape.plan(fold(handle.partition("/")[0]), version)
        if isinstance(plan, str):
            yield line, handle, plan, original
            continue
        pieces: list[tuple[int, bytes]] = []
        terms: list[str] = []
        problem = None
        present: set[int] = set()
        index_of, items, refused = plan.index, plan.items, plan.refused
        for position in plan.order:
            text = cells[position]
            if text == "":
                continue
            index = index_of[position]
            assert index is not None
            if len(text) > max_bytes:
                problem = f"列 {shape.columns[position]} 的值超过 {max_bytes} 个字符"
                break
            if has_control_characters(text):
                problem = f"列 {shape.columns[position]} 含控制字符"
                break
            if index in present:
                problem = f"列 {shape.columns[position]} 与同一行的另一列都填了索引 {index}"
                break
            present.add(index)
            item = items[position]
            if item is not None:
                try:
                    check_text(item, text)
                except HandleError as exc:
                    problem = in_chinese(exc)
                    break
            value_type = plan.value_type[position]
            head = heads.get((index, value_type))
            if head is None:
                head = heads[(index, value_type)] = (
                    b'{"index":%d,"type":%s,"data":{"format":"string","value":'
                    % (index, orjson.dumps(value_type))
                )
                folded = fold(value_type)
                searchable[(index, value_type)] = folded if folded in search_types else None
            pieces.append((index, head + orjson.dumps(text) + tail))
            kind = searchable[(index, value_type)]
            if kind is not None and len(text) <= MAX_TERM_LENGTH:
                term = f"{kind}={text}"
                if term_fits(term):
                    terms.append(term)
        if problem is None:
            problem = next((plan.refused[p] for p in refused if cells[p] != ""), None)
        extra = cells[values_at].strip() if values_at is not None and values_at < len(cells) else ""
        if problem is None and plan.template is not None and not extra:
            try:
                missing_required(plan.template, present)
            except HandleError as exc:
                problem = in_chinese(exc)
        if problem:
            yield line, handle, problem, original
            continue
        if version is not None:
            reference = references.get(version)
            if reference is None:
                reference = references[version] = orjson.dumps(
                    parse_values([reference_value(version)], limits, now)[0]
                )
            pieces.append((TEMPLATE_INDEX, reference))
        pieces.sort(key=lambda piece: piece[0])
        encoded = b"[" + b",".join(piece for _, piece in pieces) + b"]"
        if extra:
            try:
                raw_values = orjson.loads(extra)
                if not isinstance(raw_values, list):
                    raise ValueError("values 列应为 JSON 数组")
                values = refuse_secrets(parse_values([*orjson.loads(encoded), *raw_values], limits, now))
            except (ValueError, orjson.JSONDecodeError) as exc:
                yield line, handle, f"values 列无法读取：{exc}", original
                continue
            except HandleError as exc:
                yield line, handle, in_chinese(exc), original
                continue
            yield line, handle, values, original
        elif version is None and TEMPLATE_INDEX in present:
            # an index-1001 column names a template: the row is checked against it as a whole
            yield line, handle, orjson.loads(encoded), original
        else:
            yield line, handle, Prepared(encoded, list(dict.fromkeys(terms))), original
