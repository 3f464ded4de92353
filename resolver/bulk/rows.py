"""Reading an import file's rows: CSV (columns by index and type, by a template's items, or a
column of JSON arrays) and JSON Lines, each row as its values, its values already in stored form,
or the reason it is rejected. No database: this runs in the reader process."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, TextIO

import orjson

from resolver.bulk.encodings import undecodable
from resolver.bulk.resume import Skip
from resolver.config import Limits
from resolver.core.csvcells import restore
from resolver.core.errors import RC, HandleError
from resolver.core.handles import fold, has_control_characters
from resolver.core.search import MAX_TERM_LENGTH, term_fits
from resolver.core.templates import (
    TEMPLATE_INDEX,
    Template,
    TemplateItem,
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

SECRET_TYPE = "hs_seckey"
SECRETS_REFUSED = (
    "批量导入不接受 HS_SECKEY（密钥）值：密钥只经 Handle API 登记，由节点以散列保存 "
    "/ an import carries no HS_SECKEY values: secrets are registered through the Handle API, which hashes them"
)


def refuse_secrets(values: list[StoredValue]) -> list[StoredValue]:
    """An import row's values, unless one is a secret key (the importer writes rows as they are:
    a secret would be stored in clear, or a hash with parameters the node did not choose)."""
    if any(fold(v["type"]) == SECRET_TYPE for v in values):
        raise HandleError(RC.INVALID_VALUE, SECRETS_REFUSED)
    return values


def jsonl_rows(
    text: TextIO, limits: Limits, skip: Skip, encoding: str = "utf-8-sig"
) -> Iterator[tuple[int, str, RowItem]]:
    """(line number, handle as written, values or an error) of the rows of a JSON Lines file:
    one `{"handle": ..., "value": [...], "templateVersion": ...}` a line."""
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
            yield line, "", refusal
            continue
        try:
            item = orjson.loads(row)
            if not isinstance(item, dict) or not isinstance(item.get("handle"), str):
                raise ValueError('每行应为 {"handle": ..., "value": [...]}')
            handle = item["handle"]
        except (ValueError, orjson.JSONDecodeError) as exc:
            yield line, "", f"不是有效的 JSON 对象：{exc}"
            continue
        raw_values = item.get("value", item.get("values"))
        version = item.get("templateVersion")
        if not isinstance(raw_values, list):
            yield line, handle, "缺少标识值数组 value"
            continue
        try:
            extra = [reference_value(version)] if isinstance(version, str) and version else []
            values = refuse_secrets(parse_values([*raw_values, *extra], limits, datetime.now(UTC)))
        except HandleError as exc:
            yield line, handle, exc.message
            continue
        yield line, handle, values


def _csv_columns(
    columns: list[str], template_version: str | None, templates: Mapping[tuple[str, str], Template]
) -> tuple[list[tuple[int, str]], list[TemplateItem | None], Template | None]:
    """What each column of a CSV header holds: (index, type) of its values and the template item
    it fills (columns named by a template's items, or `index:type`), and the template; position 0
    is the handle column. Raises ValueError for a header that cannot be read."""
    mapping: list[tuple[int, str]] = [(0, "")]
    items: list[TemplateItem | None] = [None]
    template: Template | None = None
    if template_version:
        template = next((t for (p, v), t in templates.items() if v == template_version), None)
        if template is None:
            raise ValueError(f"模板版本 {template_version} 不存在")
        by_name = {i.id_type: i for i in template.items} | {i.name: i for i in template.items}
        for column in columns[1:]:
            item = by_name.get(column)
            if item is None:
                raise ValueError(f"列 {column} 不是模板 {template_version} 的条目（用 idType 或名称作列名）")
            mapping.append((item.id_index, item.id_type))
            items.append(item)
    else:
        for column in columns[1:]:
            number, colon, value_type = column.partition(":")
            if not colon or not number.isdigit() or not value_type:
                raise ValueError(f"列名 {column} 应为 索引:类型，例如 1:URL")
            if fold(value_type) == SECRET_TYPE:
                raise ValueError(SECRETS_REFUSED)
            mapping.append((int(number), value_type))
            items.append(None)
    indexes = [index for index, _ in mapping[1:]]
    for position, index in enumerate(indexes, start=1):
        if indexes.index(index) + 1 != position:
            raise ValueError(
                f"列 {columns[position]} 与列 {columns[indexes.index(index) + 1]} 是同一个索引 {index}"
            )
    return mapping, items, template


def csv_rows(
    text: TextIO,
    template_version: str | None,
    stamp: str,
    *,
    limits: Limits,
    templates: Mapping[tuple[str, str], Template],
    search_types: frozenset[str],
    skip: Skip,
    encoding: str = "utf-8-sig",
) -> Iterator[tuple[int, str, RowItem]]:
    """(line number, handle as written, values or an error) of the rows of a CSV file: a `handle`
    column, then columns named `index:type` or by the items of `template_version`'s template, or
    a single `values` column of JSON arrays (what `export --format csv` writes)."""
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    refusal = undecodable(header, 1, encoding)
    if refusal is not None:
        raise ValueError(refusal)
    # a byte-order mark read as text (--encoding naming a codec that keeps it) is not a name
    columns = [h.strip().lstrip("\ufeff").strip() for h in header]
    if not columns or columns[0].lower() != "handle":
        raise ValueError("CSV 的第一列必须是 handle")
    if [c.lower() for c in columns] == ["handle", "values"]:
        yield from csv_json_rows(reader, template_version, limits, skip, encoding)
        return
    mapping, items, template = _csv_columns(columns, template_version, templates)
    indexes = [index for index, _ in mapping[1:]]
    reference = (
        parse_values([reference_value(template_version)], limits, datetime.now(UTC))[0]
        if template_version
        else None
    )
    # Cells are checked against their template items as they are read, and each row's stored
    # JSON is put together from pieces built once per column. Only a file without a template
    # that has a column for index 1001 (a template reference) goes through the general path,
    # which checks the row against the template it names.
    prepared = template is not None or TEMPLATE_INDEX not in indexes
    tail = b'},"ttl":%d,"timestamp":%s}' % (DEFAULT_TTL, orjson.dumps(stamp))
    heads = [b""] + [
        b'{"index":%d,"type":%s,"data":{"format":"string","value":' % (index, orjson.dumps(value_type))
        for index, value_type in mapping[1:]
    ]
    searchable = [None] + [
        fold(value_type) if fold(value_type) in search_types else None for _, value_type in mapping[1:]
    ]
    # Stored values are ordered by index; the reference (1001) precedes template items (2000 on).
    order = sorted(range(1, len(mapping)), key=lambda position: mapping[position][0])
    reference_json = orjson.dumps(reference) if reference is not None else None
    max_bytes = limits.max_value_bytes
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line += 1
            yield line, "", f"该行无法读取：{exc}"
            continue
        line += 1
        if line in skip:
            continue
        if not cells:
            continue
        refusal = undecodable(cells, line, encoding)
        if refusal is not None:
            yield line, "", refusal
            continue
        handle = cells[0].strip()
        if len(cells) > len(mapping):
            yield line, handle, f"该行有 {len(cells)} 列，表头只有 {len(mapping)} 列"
            continue
        encoded: dict[int, bytes] = {}
        terms: list[str] = []
        problem = None
        present: set[int] = set()
        for position in range(1, len(cells)):
            cell = cells[position]
            if cell == "":
                continue
            if len(cell) > max_bytes:
                problem = f"列 {columns[position]} 的值超过 {max_bytes} 个字符"
                break
            if has_control_characters(cell):
                problem = f"列 {columns[position]} 含控制字符"
                break
            item = items[position]
            if item is not None:
                try:
                    check_text(item, cell)
                except HandleError as exc:
                    problem = exc.message
                    break
                present.add(item.id_index)
            encoded[position] = heads[position] + orjson.dumps(cell) + tail
            kind = searchable[position]
            if kind is not None and len(cell) <= MAX_TERM_LENGTH:
                term = f"{kind}={cell}"
                if term_fits(term):
                    terms.append(term)
        if problem is None and template is not None:
            try:
                missing_required(template, present)
            except HandleError as exc:
                problem = exc.message
        if problem:
            yield line, handle, problem
            continue
        parts = [encoded[position] for position in order if position in encoded]
        if reference_json is not None:
            parts.insert(0, reference_json)
        if prepared:
            yield line, handle, Prepared(b"[" + b",".join(parts) + b"]", list(dict.fromkeys(terms)))
        else:
            yield line, handle, orjson.loads(b"[" + b",".join(parts) + b"]")


def csv_json_rows(
    reader: Any, template_version: str | None, limits: Limits, skip: Skip, encoding: str = "utf-8-sig"
) -> Iterator[tuple[int, str, RowItem]]:
    """CSV of `handle,values` where values is a JSON array (what `export --format csv` writes)."""
    extra = [reference_value(template_version)] if template_version else []
    line = 1
    for cells in reader:
        line += 1
        if line in skip:
            continue
        if not cells:
            continue
        refusal = undecodable(cells, line, encoding)
        if refusal is not None:
            yield line, "", refusal
            continue
        # this format is what export writes: its cells are restored from export's neutralisation
        handle = restore(cells[0]).strip()
        try:
            raw_values = orjson.loads(restore(cells[1])) if len(cells) > 1 else None
            if not isinstance(raw_values, list):
                raise ValueError("values 列应为 JSON 数组")
            values = refuse_secrets(parse_values([*raw_values, *extra], limits, datetime.now(UTC)))
        except (ValueError, orjson.JSONDecodeError) as exc:
            yield line, handle, f"values 列无法读取：{exc}"
            continue
        except HandleError as exc:
            yield line, handle, exc.message
            continue
        yield line, handle, values
