"""Bulk import and export of identifiers: `resolver import FILE`, `resolver export --prefix P`.

An import streams the file in chunks. A reader process parses and validates each row (handle,
prefix state, values, template) and turns the valid rows of a chunk into the bytes of a binary
COPY, placed in memory both processes map; this process only feeds those bytes to Postgres. A
chunk of new identifiers is COPied straight into `handles`; once a row turns out to exist already,
chunks go through a staging table and a merge that sorts out existing rows one by one. The chunk's search terms, its audit
entry (a digest of what it added) and the import's progress are written in the same transaction,
so an interrupted import resumes after its last committed chunk: nothing is written twice and
nothing is lost. Rejected rows are appended, with their reasons, to a report once their chunk has
committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import hashlib
import io
import logging
import mmap
import multiprocessing
import os
import struct
import sys
import time
from array import array
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TextIO, cast

import asyncpg
import orjson

from resolver.bulk.userfiles import RefusedFile, append, create, open_regular, same_file
from resolver.config import Config
from resolver.core.csvcells import cell, json_cell, restore
from resolver.core.errors import RC, HandleError
from resolver.core.handles import HandleName, NodeScope, fold, has_control_characters, parse_handle
from resolver.core.permissions import ALL, NONE, Identity, Perm
from resolver.core.policy import Action, Caller, check_write
from resolver.core.search import MAX_TERM_LENGTH, search_terms, term_fits
from resolver.core.templates import (
    SHARED,
    TEMPLATE_INDEX,
    Template,
    TemplateItem,
    check_text,
    check_values,
    missing_required,
    parse_template,
    reference_value,
    template_version_of,
)
from resolver.core.values import DEFAULT_TTL, StoredValue, parse_values, timestamp
from resolver.services.statistics import today
from resolver.store.notifications import CHANNEL, notification_payloads
from resolver.store.queries import Q

CHUNK_ROWS = 50_000
FIRST_CHUNK_ROWS = 10_000
LAST_CHUNK_ROWS = 5_000
# Bytes of one shared chunk slot: a chunk of CHUNK_ROWS rows of ten values fits.
SLOT_BYTES = 64 << 20
log = logging.getLogger(__name__)


class Skip:
    """The lines an earlier run of the same import already wrote: all up to `upto`, and the
    ranges of chunks that committed after a gap. Asked with increasing line numbers."""

    def __init__(self, upto: int = 0, ranges: Sequence[tuple[int, int]] = ()) -> None:
        self.upto = upto
        self._ranges = [r for r in sorted(ranges) if r[1] > upto]
        self._at = 0

    def __contains__(self, line: object) -> bool:
        assert isinstance(line, int)
        if line <= self.upto:
            return True
        ranges = self._ranges
        while self._at < len(ranges) and ranges[self._at][1] < line:
            self._at += 1
        return self._at < len(ranges) and ranges[self._at][0] <= line

    @classmethod
    def from_chunks(cls, chunks: Sequence[tuple[int, int]], header_lines: int) -> Skip:
        """From committed chunks (first, last line; a chunk starts where the one before it ended):
        the contiguous run from the start of the file, and the chunks after a gap."""
        upto = header_lines
        rest = []
        for first, last in sorted(chunks):
            if first <= upto + 1:
                upto = max(upto, last)
            else:
                rest.append((first, last))
        return cls(upto, rest)


@dataclass
class ImportResult:
    """What an import did (counts include the chunks of earlier, interrupted runs)."""

    rows: int = 0  # the last line of the file that has been processed
    accepted: int = 0
    rejected: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    report: Path | None = None


class Prepared(NamedTuple):
    """A row's values already in their stored form (the reader's fast path for CSV columns)."""

    json: bytes  # the JSON array of stored values
    terms: list[str]  # its reverse-lookup terms, without repeats


# What the row readers yield for a data row: its values, its prepared values, or why it is rejected.
RowItem = list[StoredValue] | Prepared | str

# COPY's binary format: a header, then per row the number of fields and each field as its length
# and its bytes (for text and json columns, the UTF-8 text itself: nothing to escape), then -1.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER = b"\xff\xff"
_FIELD = struct.Struct(">i")
_ROW = struct.Struct(">h")


def copy_row(*fields: bytes) -> bytes:
    """One row of a binary COPY whose fields are text (or json)."""
    parts = [_ROW.pack(len(fields))]
    for field_bytes in fields:
        parts.append(_FIELD.pack(len(field_bytes)))
        parts.append(field_bytes)
    return b"".join(parts)


def copy_rows(payload: bytes | memoryview) -> Iterator[tuple[bytes | memoryview, list[str]]]:
    """(the row's bytes, its fields) of each row of a binary COPY of text fields."""
    at = len(COPY_HEADER)
    end = len(payload) - len(COPY_TRAILER)
    while at < end:
        start = at
        (count,) = _ROW.unpack_from(payload, at)
        at += _ROW.size
        fields = []
        for _ in range(count):
            (length,) = _FIELD.unpack_from(payload, at)
            at += _FIELD.size
            fields.append(str(payload[at : at + length], "utf-8"))
            at += length
        yield payload[start:at], fields


async def _blocks(data: bytes | memoryview, size: int = 1 << 20) -> AsyncIterator[bytes]:
    # Views, not copies: asyncpg takes any buffer (its stubs say bytes).
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield cast(bytes, view[start : start + size])


@dataclass(frozen=True)
class ReadPlan:
    """What the reader process reads: the file, its format and template, the lines to skip (a
    resumed import) and the most rows in a chunk."""

    path: Path
    fmt: str
    template_version: str | None
    skip: Skip
    chunk_rows: int


@dataclass
class _Chunk:
    first_line: int
    rows: list[tuple[int, str, str, str, bytes, list[str]]] = field(
        default_factory=list
    )  # line, key, handle, prefix, values JSON, search terms
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # line, handle, reason
    last_line: int = 0


def file_digest(path: Path) -> str:
    """sha256 of the file: an import is resumed only for the very same file."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def detect_format(path: Path, given: str | None) -> str:
    if given:
        return given
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"


class Progress:
    """A progress line on stderr: rows, rate, share of the file, ETA."""

    def __init__(self, total_bytes: int, stream: TextIO = sys.stderr) -> None:
        self.total = max(1, total_bytes)
        self.stream = stream
        self.started = time.monotonic()
        self.interactive = stream.isatty()
        self._last = 0.0

    def update(self, rows: int, done_bytes: int, rejected: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < (0.2 if self.interactive else 5.0):
            return
        self._last = now
        elapsed = max(1e-6, now - self.started)
        rate = rows / elapsed
        share = min(1.0, done_bytes / self.total)
        eta = (elapsed / share - elapsed) if share > 0 else 0.0
        bar = "#" * int(share * 30)
        line = (
            f"[{bar:<30}] {share:6.1%}  {rows:,} rows  {rate:,.0f} rows/s  "
            f"ETA {int(eta // 60)}m{int(eta % 60):02d}s  rejected {rejected:,}"
        )
        end = "\n" if final or not self.interactive else ""
        self.stream.write(("\r" if self.interactive else "") + line + end)
        self.stream.flush()


@dataclass
class EncodedChunk:
    """A chunk ready for Postgres, built by the reader process: its rows and search terms as the
    bytes of a binary COPY, so that sending it between processes and writing it cost little more
    than copying bytes (and Postgres reads binary COPY faster than text)."""

    first_line: int
    last_line: int
    position: int
    lines: array[int]  # the file line of each row, in the order of `rows`
    keys: str  # the key of each row, newline-separated (keys hold no control characters)
    rows: bytes | memoryview  # binary COPY for handles (key, handle, prefix, vals)
    terms: bytes | memoryview  # binary COPY for search_terms (key, term, prefix); empty when none
    prefixes: dict[str, int]  # rows per prefix
    digest: str  # sha256 of `rows`
    rejected: list[tuple[int, str, str]]  # line, handle, reason
    # Set when `rows` and `terms` travel in a shared slot: (slot, bytes of rows, bytes of terms).
    slot: tuple[int, int, int] | None = None

    def decoded_rows(self) -> list[tuple[str, str, str, str, bytes | memoryview]]:
        """(key, handle, prefix, values JSON, the row's COPY bytes) of each row."""
        return [(key, handle, prefix, data, raw) for raw, (key, handle, prefix, data) in copy_rows(self.rows)]

    def decoded_terms(self) -> list[tuple[str, str, str]]:
        """(key, term, prefix) of each search term."""
        return [(key, term, prefix) for _, (key, term, prefix) in copy_rows(self.terms)]


class ChunkSlots:
    """Buffers shared with the forked reader process, one chunk's COPY bytes each.

    Pickled through a pipe, a chunk of 50,000 rows (about 30 MB) was copied four times and
    page-faulted afresh on both sides; through a slot it is copied once into memory both processes
    map, and Postgres is fed straight from there. The writer hands a slot back once its chunk is
    written. A chunk too large for a slot travels through the pipe as before.
    """

    def __init__(self, context: Any, count: int, size: int) -> None:
        self.size = size
        # Anonymous shared mappings, made before the fork: the child inherits them.
        self.buffers = [mmap.mmap(-1, size) for _ in range(count)]
        self._free, self._freeing = context.Pipe(duplex=False)
        for slot in range(count):
            self._freeing.send(slot)

    def reader_side(self) -> None:
        """(reader side) Drop the writer's end, so that a writer gone for good ends the reader."""
        self._freeing.close()

    def put(self, rows: bytes | memoryview, terms: bytes | memoryview) -> tuple[int, int, int] | None:
        """(reader side) Copy a chunk into a free slot, waiting for one; None when it does not fit."""
        if len(rows) + len(terms) > self.size:
            return None
        slot: int = self._free.recv()
        buffer = self.buffers[slot]
        buffer[: len(rows)] = rows
        buffer[len(rows) : len(rows) + len(terms)] = terms
        return slot, len(rows), len(terms)

    def attach(self, chunk: EncodedChunk) -> None:
        """(writer side) Point the chunk's rows and terms at its slot."""
        if chunk.slot is not None:
            slot, rows, terms = chunk.slot
            view = memoryview(self.buffers[slot])
            chunk.rows = view[:rows]
            chunk.terms = view[rows : rows + terms]

    def release(self, chunk: EncodedChunk) -> None:
        """(writer side) The chunk is written: its slot may be filled again."""
        if chunk.slot is not None:
            chunk.rows = chunk.terms = b""
            self._freeing.send(chunk.slot[0])

    def stop_reader(self) -> None:
        """(writer side) No slot will come free again: a reader waiting for one stops."""
        self._freeing.close()

    def close(self) -> None:
        self._free.close()
        self._freeing.close()
        for buffer in self.buffers:
            # a view still held by a failed write: the mapping goes when the view does
            with contextlib.suppress(BufferError):
                buffer.close()


def _start_of_file() -> int:
    return 0


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


class _Owner(NamedTuple):
    """An enterprise prefix as the write policy sees it."""

    prefix: str
    state: int
    enterprise_id: int


class RowReader:
    """Reads a file and validates its rows against the node's prefixes and templates.

    It needs no database: it runs in a process of its own while the importer writes.
    """

    def __init__(
        self,
        config: Config,
        prefixes: dict[str, tuple[int, int]],
        templates: dict[tuple[str, str], Template],
    ) -> None:
        self.config = config
        self.scope = NodeScope(config.node_prefix)
        self.caller = Caller(
            Identity(300, self.scope.node_prefix_handle, f"0.NA/{config.node_prefix}", actor="import"),
            node_admin=True,
        )
        self.search_types = frozenset(config.search_types)
        self.prefixes = prefixes
        self.templates = templates
        # Prefixes (as written) already found valid, served here and enabled.
        self._prefix_checked: dict[str, str] = {}
        # Data rows up to this line were imported by an earlier run: read past them unparsed.
        self.skip = Skip()
        # How far into the file the reading is (asked once a chunk, not once a row: it is a syscall).
        self._tell: Callable[[], int] = _start_of_file  # a plain function: the reader is pickled under spawn

    def _template(self, prefix: str, version: str) -> Template:
        template = self.templates.get((prefix, version)) or self.templates.get((SHARED, version))
        if template is None:
            raise HandleError(RC.INVALID_VALUE, f"模板版本 {version} 不存在")
        return template

    def _admit(self, name: HandleName) -> None:
        """The write policy, as for every API: the importer writes as the node operator."""
        current: str | None = name.prefix
        owner: _Owner | None = None
        while current is not None and self.scope.owns_prefix(current):
            info = self.prefixes.get(current)
            if info is not None:
                owner = _Owner(current, info[0], info[1])
                break
            head, dot, _ = current.rpartition(".")
            current = head if dot else None
        check_write(self.caller, name, owner, Action.CREATE, Perm.ADD_HANDLE, ALL, NONE)

    # -- reading rows --------------------------------------------------------------------------

    def rows(self, path: Path, fmt: str, template_version: str | None) -> Iterator[tuple[int, str, RowItem]]:
        """(line number, handle as written, values or an error) of the data rows."""
        stamp = timestamp(datetime.now(UTC))
        with open_regular(path) as raw:
            self._tell = raw.tell
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")
            if fmt == "jsonl":
                yield from self._jsonl_rows(text)
            else:
                yield from self._csv_rows(text, template_version, stamp)
        end = path.stat().st_size
        self._tell = lambda: end

    def _jsonl_rows(self, text: TextIO) -> Iterator[tuple[int, str, RowItem]]:
        limits = self.config.limits
        line = 0
        while True:
            try:
                row = text.readline()
            except UnicodeDecodeError:
                line += 1
                yield line, "", "该行不是有效的 UTF-8"
                continue
            if not row:
                return
            line += 1
            if line in self.skip:
                continue
            if not row.strip():
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

    def _csv_rows(
        self, text: TextIO, template_version: str | None, stamp: str
    ) -> Iterator[tuple[int, str, RowItem]]:
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None:
            return
        columns = [h.strip() for h in header]
        if not columns or columns[0].lower() != "handle":
            raise ValueError("CSV 的第一列必须是 handle")
        limits = self.config.limits
        if [c.lower() for c in columns] == ["handle", "values"]:
            yield from self._csv_json_rows(reader, template_version)
            return
        mapping: list[tuple[int, str]] = [(0, "")]
        items: list[TemplateItem | None] = [None]
        template: Template | None = None
        if template_version:
            template = next((t for (p, v), t in self.templates.items() if v == template_version), None)
            if template is None:
                raise ValueError(f"模板版本 {template_version} 不存在")
            by_name = {i.id_type: i for i in template.items} | {i.name: i for i in template.items}
            for column in columns[1:]:
                item = by_name.get(column)
                if item is None:
                    raise ValueError(
                        f"列 {column} 不是模板 {template_version} 的条目（用 idType 或名称作列名）"
                    )
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
            fold(value_type) if fold(value_type) in self.search_types else None
            for _, value_type in mapping[1:]
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
            except (UnicodeDecodeError, csv.Error) as exc:
                line += 1
                yield line, "", f"该行无法读取：{exc}"
                continue
            line += 1
            if line in self.skip:
                continue
            if not cells:
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

    def _csv_json_rows(self, reader: Any, template_version: str | None) -> Iterator[tuple[int, str, RowItem]]:
        """CSV of `handle,values` where values is a JSON array (what `export --format csv` writes)."""
        extra = [reference_value(template_version)] if template_version else []
        line = 1
        for cells in reader:
            line += 1
            if line in self.skip:
                continue
            if not cells:
                continue
            # this format is what export writes: its cells are restored from export's neutralisation
            handle = restore(cells[0]).strip()
            try:
                raw_values = orjson.loads(restore(cells[1])) if len(cells) > 1 else None
                if not isinstance(raw_values, list):
                    raise ValueError("values 列应为 JSON 数组")
                values = refuse_secrets(
                    parse_values([*raw_values, *extra], self.config.limits, datetime.now(UTC))
                )
            except (ValueError, orjson.JSONDecodeError) as exc:
                yield line, handle, f"values 列无法读取：{exc}"
                continue
            except HandleError as exc:
                yield line, handle, exc.message
                continue
            yield line, handle, values

    # -- validating and writing ----------------------------------------------------------------

    def validate(self, handle: str, values: list[StoredValue] | Prepared) -> tuple[str, str, str]:
        """(key, handle, prefix) of a valid row; raises with the reason otherwise."""
        limits = self.config.limits
        prefix_text, _, suffix = handle.partition("/")
        prefix = self._prefix_checked.get(prefix_text)
        if (
            prefix is None
            or not suffix
            or len(handle) > limits.max_handle_length
            or has_control_characters(handle)
        ):
            # The full checks, with their precise messages; a prefix that passes is remembered.
            name = parse_handle(handle, limits)
            if not self.scope.is_responsible(name):
                raise HandleError(
                    RC.SERVER_NOT_RESPONSIBLE, f"{handle} 不在本节点前缀 {self.config.node_prefix} 之下"
                )
            if name.is_prefix_handle:
                raise HandleError(
                    RC.INSUFFICIENT_PERMISSIONS,
                    f"{handle} 是前缀记录：批量导入只登记标识，前缀记录由运营接口管理",
                )
            self._admit(name)
            if name.text == handle:
                self._prefix_checked[prefix_text] = name.prefix
            handle, prefix = name.text, name.prefix
        if not isinstance(values, Prepared):  # prepared values were checked as they were read
            version = template_version_of(values)
            if version is not None:
                check_values(self._template(prefix, version), values)
        return fold(handle), handle, prefix

    def _fill(
        self, rows: Iterator[tuple[int, str, RowItem]], skip: Skip, chunk_rows: int, first_line: int
    ) -> tuple[_Chunk, bool]:
        """Read and validate the next chunk of rows, the lines from `first_line` on."""
        started = time.perf_counter()
        chunk = _Chunk(first_line=first_line)
        seen: set[str] = set()
        search_types = self.search_types
        for line, handle, item in rows:
            if line in skip:
                continue
            chunk.last_line = line
            if isinstance(item, str):
                chunk.rejected.append((line, handle, item))
            else:
                try:
                    key, shown, prefix = self.validate(handle, item)
                    if key in seen:
                        raise HandleError(RC.HANDLE_ALREADY_EXISTS, "同一文件的本批次中该标识重复出现")
                    seen.add(key)
                except HandleError as exc:
                    chunk.rejected.append((line, handle, exc.message))
                else:
                    if isinstance(item, Prepared):
                        data, terms = item
                    else:
                        data, terms = (
                            orjson.dumps(item),
                            list(dict.fromkeys(search_terms(item, search_types))),
                        )
                    chunk.rows.append((line, key, shown, prefix, data, terms))
            if len(chunk.rows) + len(chunk.rejected) >= chunk_rows:
                log.debug("read chunk %d-%d in %.2fs", chunk.first_line, line, time.perf_counter() - started)
                return chunk, False
        return chunk, True

    def encode(self, chunk: _Chunk, position: int) -> EncodedChunk:
        """The chunk as binary COPY data for handles and search_terms."""
        rows: list[bytes] = [COPY_HEADER]
        terms: list[bytes] = [COPY_HEADER]
        prefixes: dict[str, int] = {}
        prefix_bytes: dict[str, bytes] = {}
        for _, key, handle, prefix, data, row_terms in chunk.rows:
            encoded_prefix = prefix_bytes.get(prefix)
            if encoded_prefix is None:
                encoded_prefix = prefix_bytes[prefix] = prefix.encode()
            encoded_key = key.encode()
            rows.append(copy_row(encoded_key, handle.encode(), encoded_prefix, data))
            for term in row_terms:
                terms.append(copy_row(encoded_key, term.encode(), encoded_prefix))
            prefixes[prefix] = prefixes.get(prefix, 0) + 1
        rows.append(COPY_TRAILER)
        terms.append(COPY_TRAILER)
        payload = b"".join(rows)
        return EncodedChunk(
            first_line=chunk.first_line,
            last_line=chunk.last_line,
            position=position,
            lines=array("q", [row[0] for row in chunk.rows]),
            keys="\n".join([row[1] for row in chunk.rows]),
            rows=payload,
            terms=b"".join(terms) if len(terms) > 2 else b"",
            prefixes=prefixes,
            digest=hashlib.sha256(payload).hexdigest(),
            rejected=chunk.rejected,
        )

    def stream(self, plan: ReadPlan, pipe: Any, slots: ChunkSlots | None = None) -> None:
        """Send the file's chunks through `pipe`, then None (or the error that stopped the reading)."""
        path, skip, chunk_rows = plan.path, plan.skip, plan.chunk_rows
        try:
            self.skip = skip
            rows = self.rows(path, plan.fmt, plan.template_version)
            size = min(chunk_rows, FIRST_CHUNK_ROWS)
            total = path.stat().st_size
            next_line = skip.upto + 1
            while True:
                chunk, done = self._fill(rows, skip, size, next_line)
                position = self._tell()
                if chunk.rows or chunk.rejected:
                    encoded = self.encode(chunk, position)
                    placed = slots.put(encoded.rows, encoded.terms) if slots is not None else None
                    if placed is not None:
                        encoded.rows = encoded.terms = b""
                        encoded.slot = placed
                    pipe.send(encoded)
                    next_line = chunk.last_line + 1
                if done:
                    break
                size = next_chunk_size(size, chunk_rows, chunk.last_line, position, total)
            pipe.send(None)
        except (ValueError, OSError) as exc:
            with contextlib.suppress(OSError):  # the writer may be gone (a broken pipe)
                pipe.send(exc)
        except EOFError:
            pass  # the writer stopped (it failed, or was interrupted): nothing more to read for
        finally:
            pipe.close()


def next_chunk_size(size: int, chunk_rows: int, lines_read: int, position: int, total: int) -> int:
    """Rows of the next chunk: doubling from a small first one up to `chunk_rows`, and shrinking
    again over the last part of the file.

    The reader and the writer overlap on every chunk but the first (nothing to write yet) and the
    last (nothing left to read): small chunks at both ends keep those two short. The rows left are
    estimated from the bytes left and the bytes per line so far.
    """
    size = min(chunk_rows, size * 2)
    per_line = position / max(lines_read, 1)
    left = (total - position) / per_line if per_line else 0.0
    if left < 2 * size:
        size = max(LAST_CHUNK_ROWS, int(left / 2) + 1)
    return min(size, chunk_rows)


def _read_in_process(
    reader: RowReader, plan: ReadPlan, pipe: Any, slots: ChunkSlots | None, writer_end: Any
) -> None:
    # A chunk holds hundreds of thousands of small containers and no reference cycles: the cyclic
    # garbage collector would rescan them all again and again (it more than doubled the time).
    gc.disable()
    # Forked, this process holds the writer's ends too; dropping them makes a writer that stops
    # (failed or interrupted) end this process instead of leaving it blocked on a full pipe.
    if writer_end is not None:
        writer_end.close()
    if slots is not None:
        slots.reader_side()
    reader.stream(plan, pipe, slots)


class Importer:
    """Writes what a RowReader (in another process) validated, chunk by chunk, resumably."""

    def __init__(self, config: Config, conn: asyncpg.Connection, *, actor: str = "import") -> None:
        self.config = config
        self.conn = conn
        self.actor = actor
        self.reader: RowReader | None = None
        self.direct = True  # COPY chunks straight into handles until a row turns out to exist

    async def load_context(self) -> RowReader:
        """Enterprise prefixes and templates, read once per import."""
        prefixes = {
            row[0]: (int(row[1]), int(row[2])) for row in await self.conn.fetch(Q["enterprise_prefix_all"])
        }
        templates = {}
        for prefix, version, codes, items in await self.conn.fetch(Q["templates_all"]):
            raw = {"version": version, "industryCodes": list(codes), "items": orjson.loads(items)}
            templates[(prefix, version)] = parse_template(raw, prefix)
        self.reader = RowReader(self.config, prefixes, templates)
        return self.reader

    async def write_chunk(
        self, conn: asyncpg.Connection, digest: str, chunk: EncodedChunk, path: Path
    ) -> tuple[list[tuple[int, str, str]], int]:
        """Write and record one chunk in one transaction; returns its rejected rows and its
        number of accepted rows."""
        count = len(chunk.lines)
        rejected = list(chunk.rejected)
        phases: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(phase: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            phases[phase] = now - clock
            clock = now

        columns = ["key", "handle", "prefix", "vals"]
        async with conn.transaction():
            conflicting: set[str] = set()
            decoded: list[tuple[str, str, str, str, bytes | memoryview]] = []
            if count and self.direct:
                # The common case, a file of new identifiers: COPY straight into handles. A row
                # that already exists fails the whole COPY; then this chunk and the rest of the
                # file go through the staging table, which sorts out existing rows one by one.
                try:
                    async with conn.transaction():
                        await conn.copy_to_table(
                            "handles", source=_blocks(chunk.rows), columns=columns, format="binary"
                        )
                    lap("copy")
                except asyncpg.UniqueViolationError:
                    self.direct = False
                    lap("copy refused")
            if count and not self.direct:
                await conn.execute(Q["import_staging_create"])
                await conn.copy_to_table(
                    "import_staging", source=_blocks(chunk.rows), columns=columns, format="binary"
                )
                lap("staging copy")
                inserted = {row[0] for row in await conn.fetch(Q["import_merge"])}
                lap("merge")
                if len(inserted) < count:
                    decoded = chunk.decoded_rows()
                    staged = {row[0]: (line, row) for line, row in zip(chunk.lines, decoded, strict=True)}
                    existed = [key for key in staged if key not in inserted]
                    for key, existing in await conn.fetch(Q["import_conflicts"], existed):
                        conflicting.add(key)
                        line, row = staged[key]
                        if not _same(orjson.loads(existing), orjson.loads(row[3])):
                            rejected.append((line, row[1], "标识已存在且内容不同"))
            if conflicting:
                added = [row for row in decoded if row[0] not in conflicting]
                keys = [row[0] for row in added]
                terms = [t for t in chunk.decoded_terms() if t[0] not in conflicting]
                if terms:
                    await conn.copy_records_to_table(
                        "search_terms", records=terms, columns=["key", "term", "prefix"]
                    )
                added_digest = hashlib.sha256(
                    b"".join([COPY_HEADER, *(row[4] for row in added), COPY_TRAILER])
                ).hexdigest()
                per_prefix: dict[str, int] = {}
                for row in added:
                    per_prefix[row[2]] = per_prefix.get(row[2], 0) + 1
            else:
                keys = chunk.keys.split("\n") if count else []
                if chunk.terms:
                    await conn.copy_to_table(
                        "search_terms",
                        source=_blocks(chunk.terms),
                        columns=["key", "term", "prefix"],
                        format="binary",
                    )
                added_digest, per_prefix = chunk.digest, chunk.prefixes
            lap("terms")
            accepted = count - (len(rejected) - len(chunk.rejected))
            detail = {
                "file": str(path),
                "fileDigest": digest,
                "lines": [chunk.first_line, chunk.last_line],
                "inserted": len(keys),
                "accepted": accepted,
                "rejected": len(rejected),
                # of the inserted rows as binary COPY data (key, handle, prefix, values JSON)
                "sha256": added_digest,
            }
            await conn.execute(
                Q["audit_many"],
                [self.actor],
                [None],
                ["import.chunk"],
                [None],
                [None],
                [None],
                [orjson.dumps(detail).decode()],
            )
            await conn.execute(
                Q["import_chunk_done"], digest, chunk.first_line, chunk.last_line, accepted, len(rejected)
            )
            if keys:
                await conn.execute(Q["notify_many"], CHANNEL, notification_payloads(keys))
                prefixes = sorted(per_prefix)
                zeros = [0] * len(prefixes)
                await conn.execute(
                    Q["daily_add"],
                    [today()] * len(prefixes),
                    prefixes,
                    [per_prefix[p] for p in prefixes],
                    zeros,
                    zeros,
                )
            lap("record")
        lap("commit")
        log.debug(
            "chunk %d-%d: %s",
            chunk.first_line,
            chunk.last_line,
            " ".join(f"{k} {v:.2f}s" for k, v in phases.items()),
        )
        return rejected, accepted

    async def run(
        self,
        path: Path,
        *,
        fmt: str | None = None,
        template_version: str | None = None,
        report: Path | None = None,
        chunk_rows: int = CHUNK_ROWS,
        progress: Progress | None = None,
        writers: int = 1,
    ) -> ImportResult:
        """Import a file (resuming an interrupted import of the same file).

        A reader process parses and validates while this process writes: on two cores, Python and
        Postgres work at the same time.
        """
        started = time.monotonic()
        fmt = detect_format(path, fmt)
        report = report or path.with_name(path.name + ".rejected.csv")
        digest = file_digest(path)
        if same_file(report, path):
            raise RefusedFile(f"报告文件 {report} 就是要导入的文件：请用 --report 另指定报告文件")
        reader = await self.load_context()
        # A run of this file that began before wrote the start of the report: this one continues it.
        resuming = await self.conn.fetchrow(Q["import_get"], digest) is not None
        await self.conn.execute(Q["import_start"], digest, str(path))
        state = await self.conn.fetchrow(Q["import_get"], digest)
        assert state is not None
        chunks = [tuple(r) for r in await self.conn.fetch(Q["import_chunks_of"], digest)]
        header_lines = 1 if fmt == "csv" else 0
        ranges = [(int(r[0]), int(r[1])) for r in chunks]
        if not ranges and int(state[1]):  # an import begun before chunks were recorded one by one
            ranges = [(header_lines + 1, int(state[1]))]
        skip = Skip.from_chunks(ranges, header_lines)
        totals = ImportResult(
            rows=max((last for _, last in ranges), default=0),
            accepted=sum(int(r[2]) for r in chunks) or int(state[2]),
            rejected=sum(int(r[3]) for r in chunks) or int(state[3]),
            resumed_from=skip.upto if ranges else 0,
            report=report,
        )
        if state[4]:
            totals.seconds = time.monotonic() - started
            return totals
        size = path.stat().st_size
        # fork starts the reader at once; the child only reads the file and writes to the pipe, and
        # multiprocessing ends it with os._exit, so it never touches the parent's connection.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context: Any = multiprocessing.get_context(method)
        receiving, sending = context.Pipe(duplex=False)
        # a chunk being written by each writer, one waiting, one being filled
        slots = ChunkSlots(context, writers + 2, SLOT_BYTES) if method == "fork" else None
        process = context.Process(
            target=_read_in_process,
            args=(
                reader,
                ReadPlan(path, fmt, template_version, skip, chunk_rows),
                sending,
                slots,
                receiving if method == "fork" else None,
            ),
            daemon=True,
        )
        process.start()
        sending.close()
        # `writers` chunks are written at once, each on its own connection. On two cores one is
        # best: the reader process and one Postgres backend keep both busy (two writers measured
        # 0.46 of raw COPY against 0.58-0.62 for one); more cores can use more.
        connections: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
        connections.put_nowait(self.conn)
        extra = (
            [await asyncpg.connect(self.config.dsn) for _ in range(writers - 1)] if self.config.dsn else []
        )
        for conn in extra:
            connections.put_nowait(conn)
        tasks: set[asyncio.Task[None]] = set()
        try:
            # Never written through a link or into a file another name shares (userfiles); every
            # cell written so that a spreadsheet shows it and runs nothing (csvcells).
            with append(report) if resuming else create(report) as out:
                writer = csv.writer(out)
                if out.tell() == 0:
                    writer.writerow(["line", "handle", "reason"])

                async def write(chunk: EncodedChunk, conn: asyncpg.Connection) -> None:
                    try:
                        for attempt in range(3):
                            try:
                                rejected, accepted = await self.write_chunk(conn, digest, chunk, path)
                                break
                            except asyncpg.DeadlockDetectedError:
                                # two chunks holding the same handles, taken in different orders
                                if attempt == 2:
                                    raise
                    finally:
                        connections.put_nowait(conn)
                        if slots is not None:
                            slots.release(chunk)
                    totals.accepted += accepted
                    totals.rejected += len(rejected)
                    totals.rows = max(totals.rows, chunk.last_line)
                    writer.writerows((line, cell(handle), cell(reason)) for line, handle, reason in rejected)
                    out.flush()
                    os.fsync(out.fileno())
                    if progress:
                        progress.update(totals.accepted + totals.rejected, chunk.position, totals.rejected)

                while True:
                    try:
                        chunk = await asyncio.to_thread(receiving.recv)
                    except EOFError:
                        raise RuntimeError("the reader process stopped unexpectedly") from None
                    if chunk is None:
                        break
                    if isinstance(chunk, Exception):
                        raise chunk
                    if slots is not None:
                        slots.attach(chunk)
                    conn = await connections.get()
                    for task in [t for t in tasks if t.done()]:
                        tasks.discard(task)
                        task.result()  # a chunk that failed stops the import here
                    task = asyncio.create_task(write(chunk, conn))
                    tasks.add(task)
                while tasks:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                    for task in done:
                        tasks.discard(task)
                        task.result()
                await self.conn.execute(
                    Q["import_finish"], digest, totals.rows, totals.accepted, totals.rejected
                )
                # Fresh statistics for the planner and for the identifiers gauge (pg_class.reltuples).
                await self.conn.execute(Q["analyze_handles"])
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        finally:
            # a chunk still being written when another failed is let finish: its rows stay written
            await asyncio.gather(*tasks, return_exceptions=True)
            for conn in extra:
                await conn.close()
            receiving.close()
            if slots is not None:
                slots.stop_reader()
            process.join(5)
            if process.is_alive():
                process.kill()
            if slots is not None:
                slots.close()
        if progress:
            progress.update(totals.accepted + totals.rejected, size, totals.rejected, final=True)
        totals.seconds = time.monotonic() - started
        return totals


def _same(existing: list[StoredValue] | None, values: list[StoredValue]) -> bool:
    if existing is None:
        return False

    def content(vals: list[StoredValue]) -> list[tuple[Any, ...]]:
        return sorted(
            (v["index"], v["type"], v["data"], v["ttl"], v.get("permissions"), v.get("references"))
            for v in vals
        )

    return content(existing) == content(values)


async def export(
    config: Config, conn: asyncpg.Connection, prefix: str, out: TextIO, fmt: str = "jsonl"
) -> int:
    """Write every handle under a prefix, in the format `import` reads; returns the count.

    CSV cells go through `csvcells` (nothing a spreadsheet runs, no raw control characters),
    which the importer undoes for this format."""
    from resolver.core.handles import check_prefix

    folded = check_prefix(prefix, config.limits)
    count = 0
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        writer.writerow(["handle", "values"])
    async with conn.transaction():
        async for row in conn.cursor(Q["export_prefix"], folded, prefetch=5000):
            values = orjson.loads(row[1])
            version = template_version_of(values)
            plain = [v for v in values if v["index"] != 1001]
            if writer:
                writer.writerow([cell(row[0]), json_cell(orjson.dumps(plain))])
            else:
                item: dict[str, Any] = {"handle": row[0], "value": plain}
                if version:
                    item["templateVersion"] = version
                out.write(orjson.dumps(item).decode() + "\n")
            count += 1
    return count
