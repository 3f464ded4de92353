"""Bulk import and export of identifiers: `resolver import FILE`, `resolver export --prefix P`.

An import streams the file in chunks. Each row is validated in Python (handle, prefix state,
values, template); the valid rows of a chunk go into a staging table with COPY and are merged
into `handles` in one statement, and the chunk's search terms, its audit entry (a digest of what
it added) and the import's progress are written in the same transaction. An interrupted import
therefore resumes after its last committed chunk: nothing is written twice and nothing is lost.
Rejected rows are appended, with their reasons, to a report once their chunk has committed.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import hashlib
import io
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import asyncpg
import orjson

from resolver.config import Config
from resolver.core.enterprises import PrefixState
from resolver.core.errors import RC, HandleError
from resolver.core.handles import NodeScope, fold, has_control_characters, parse_handle
from resolver.core.templates import (
    SHARED,
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
from resolver.stats import today
from resolver.store.db import CHANNEL, encode_values, notification_payloads, search_terms
from resolver.store.queries import Q

CHUNK_ROWS = 50_000
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


@dataclass
class _Chunk:
    first_line: int
    rows: list[tuple[int, str, str, str, list[StoredValue]]] = field(
        default_factory=list
    )  # line, key, handle, prefix, values
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # line, handle, reason
    last_line: int = 0


def file_digest(path: Path) -> str:
    """sha256 of the file: an import is resumed only for the very same file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
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
    """A chunk ready for Postgres: flat tuples of strings, cheap to send between processes."""

    first_line: int
    last_line: int
    position: int
    lines: list[int]  # the file line of each record
    records: list[tuple[str, str, str, str]]  # key, handle, prefix, values JSON: the columns of handles
    terms: list[tuple[str, str, str]]  # key, term, prefix
    rejected: list[tuple[int, str, str]]  # line, handle, reason


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
        self.search_types = frozenset(config.search_types)
        self.prefixes = prefixes
        self.templates = templates
        # Prefixes (as written) already found valid, served here and enabled.
        self._prefix_checked: dict[str, str] = {}
        self.rows_prechecked = False
        # Data rows up to this line were imported by an earlier run: read past them unparsed.
        self.skip = Skip()

    def _template(self, prefix: str, version: str) -> Template:
        template = self.templates.get((prefix, version)) or self.templates.get((SHARED, version))
        if template is None:
            raise HandleError(RC.INVALID_VALUE, f"模板版本 {version} 不存在")
        return template

    def _admit(self, prefix: str) -> None:
        current: str | None = prefix
        while current is not None and self.scope.owns_prefix(current):
            info = self.prefixes.get(current)
            if info is not None:
                if info[0] != PrefixState.ENABLED:
                    raise HandleError(RC.INSUFFICIENT_PERMISSIONS, f"前缀 {current} 未启用，不能导入")
                return
            head, dot, _ = current.rpartition(".")
            current = head if dot else None

    # -- reading rows --------------------------------------------------------------------------

    def rows(
        self, path: Path, fmt: str, template_version: str | None
    ) -> Iterator[tuple[int, str, list[StoredValue] | str, int]]:
        """(line number, handle as written, values or an error, bytes read so far), data rows only."""
        stamp = timestamp(datetime.now(UTC))
        with open(path, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")
            if fmt == "jsonl":
                yield from self._jsonl_rows(text, raw)
            else:
                yield from self._csv_rows(text, raw, template_version, stamp)

    def _jsonl_rows(self, text: TextIO, raw: Any) -> Iterator[tuple[int, str, list[StoredValue] | str, int]]:
        limits = self.config.limits
        line = 0
        while True:
            try:
                row = text.readline()
            except UnicodeDecodeError:
                line += 1
                yield line, "", "该行不是有效的 UTF-8", raw.tell()
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
                yield line, "", f"不是有效的 JSON 对象：{exc}", raw.tell()
                continue
            raw_values = item.get("value", item.get("values"))
            version = item.get("templateVersion")
            if not isinstance(raw_values, list):
                yield line, handle, "缺少标识值数组 value", raw.tell()
                continue
            try:
                extra = [reference_value(version)] if isinstance(version, str) and version else []
                values = parse_values([*raw_values, *extra], limits, datetime.now(UTC))
            except HandleError as exc:
                yield line, handle, exc.message, raw.tell()
                continue
            yield line, handle, values, raw.tell()

    def _csv_rows(
        self, text: TextIO, raw: Any, template_version: str | None, stamp: str
    ) -> Iterator[tuple[int, str, list[StoredValue] | str, int]]:
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None:
            return
        columns = [h.strip() for h in header]
        if not columns or columns[0].lower() != "handle":
            raise ValueError("CSV 的第一列必须是 handle")
        limits = self.config.limits
        if [c.lower() for c in columns] == ["handle", "values"]:
            yield from self._csv_json_rows(reader, raw, template_version)
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
            # Cells are checked against their items as they are read; no second pass is needed.
            self.rows_prechecked = True
        else:
            for column in columns[1:]:
                number, colon, value_type = column.partition(":")
                if not colon or not number.isdigit() or not value_type:
                    raise ValueError(f"列名 {column} 应为 索引:类型，例如 1:URL")
                mapping.append((int(number), value_type))
                items.append(None)
        reference = (
            parse_values([reference_value(template_version)], limits, datetime.now(UTC))[0]
            if template_version
            else None
        )
        line = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error) as exc:
                line += 1
                yield line, "", f"该行无法读取：{exc}", raw.tell()
                continue
            line += 1
            if line in self.skip:
                continue
            if not cells:
                continue
            handle = cells[0].strip()
            if len(cells) > len(mapping):
                yield line, handle, f"该行有 {len(cells)} 列，表头只有 {len(mapping)} 列", raw.tell()
                continue
            values: list[StoredValue] = []
            problem = None
            present: set[int] = set()
            for position in range(1, len(cells)):
                cell = cells[position]
                if cell == "":
                    continue
                index, value_type = mapping[position]
                if len(cell) > limits.max_value_bytes:
                    problem = f"列 {columns[position]} 的值超过 {limits.max_value_bytes} 个字符"
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
                    present.add(index)
                values.append(
                    {
                        "index": index,
                        "type": value_type,
                        "data": {"format": "string", "value": cell},
                        "ttl": DEFAULT_TTL,
                        "timestamp": stamp,
                    }
                )
            if problem is None and template is not None:
                try:
                    missing_required(template, present)
                except HandleError as exc:
                    problem = exc.message
            if problem:
                yield line, handle, problem, raw.tell()
                continue
            if reference is not None:
                values.insert(0, reference)
                values.sort(key=lambda v: v["index"])
            yield line, handle, values, raw.tell()

    def _csv_json_rows(
        self, reader: Any, raw: Any, template_version: str | None
    ) -> Iterator[tuple[int, str, list[StoredValue] | str, int]]:
        """CSV of `handle,values` where values is a JSON array (what `export --format csv` writes)."""
        extra = [reference_value(template_version)] if template_version else []
        line = 1
        for cells in reader:
            line += 1
            if line in self.skip:
                continue
            if not cells:
                continue
            handle = cells[0].strip()
            try:
                raw_values = orjson.loads(cells[1]) if len(cells) > 1 else None
                if not isinstance(raw_values, list):
                    raise ValueError("values 列应为 JSON 数组")
                values = parse_values([*raw_values, *extra], self.config.limits, datetime.now(UTC))
            except (ValueError, orjson.JSONDecodeError) as exc:
                yield line, handle, f"values 列无法读取：{exc}", raw.tell()
                continue
            except HandleError as exc:
                yield line, handle, exc.message, raw.tell()
                continue
            yield line, handle, values, raw.tell()

    # -- validating and writing ----------------------------------------------------------------

    def validate(self, handle: str, values: list[StoredValue]) -> tuple[str, str, str]:
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
            if not self.scope.is_responsible(name) or name.is_prefix_handle:
                raise HandleError(
                    RC.SERVER_NOT_RESPONSIBLE, f"{handle} 不在本节点前缀 {self.config.node_prefix} 之下"
                )
            self._admit(name.prefix)
            if name.text == handle:
                self._prefix_checked[prefix_text] = name.prefix
            handle, prefix = name.text, name.prefix
        if not self.rows_prechecked:
            version = template_version_of(values)
            if version is not None:
                check_values(self._template(prefix, version), values)
        return fold(handle), handle, prefix

    def _fill(
        self,
        rows: Iterator[tuple[int, str, list[StoredValue] | str, int]],
        skip: Skip,
        chunk_rows: int,
        first_line: int,
    ) -> tuple[_Chunk, int, bool]:
        """Read and validate the next chunk of rows, the lines from `first_line` on."""
        started = time.perf_counter()
        chunk = _Chunk(first_line=first_line)
        seen: set[str] = set()
        position = 0
        for line, handle, values, position in rows:
            if line in skip:
                continue
            chunk.last_line = line
            if isinstance(values, str):
                chunk.rejected.append((line, handle, values))
            else:
                try:
                    key, shown, prefix = self.validate(handle, values)
                    if key in seen:
                        raise HandleError(RC.HANDLE_ALREADY_EXISTS, "同一文件的本批次中该标识重复出现")
                    seen.add(key)
                    chunk.rows.append((line, key, shown, prefix, values))
                except HandleError as exc:
                    chunk.rejected.append((line, handle, exc.message))
            if len(chunk.rows) + len(chunk.rejected) >= chunk_rows:
                log.debug("read chunk %d-%d in %.2fs", chunk.first_line, line, time.perf_counter() - started)
                return chunk, position, False
        return chunk, position, True

    def encode(self, chunk: _Chunk, position: int) -> EncodedChunk:
        """The chunk as flat tuples: JSON-encoded values and the reverse-lookup terms."""
        lines = [row[0] for row in chunk.rows]
        records = [
            (key, handle, prefix, encode_values(values)) for _, key, handle, prefix, values in chunk.rows
        ]
        terms = list(
            {
                (key, term, prefix)
                for _, key, _, prefix, values in chunk.rows
                for term in search_terms(values, self.search_types)
            }
        )
        return EncodedChunk(
            chunk.first_line, chunk.last_line, position, lines, records, terms, chunk.rejected
        )

    def stream(
        self, path: Path, fmt: str, template_version: str | None, skip: Skip, chunk_rows: int, pipe: Any
    ) -> None:
        """Send the file's chunks through `pipe`, then None (or the error that stopped the reading)."""
        try:
            self.skip = skip
            rows = self.rows(path, fmt, template_version)
            # A small first chunk gets Postgres to work sooner; the rest are full size.
            size = min(chunk_rows, 10_000)
            next_line = skip.upto + 1
            while True:
                chunk, position, done = self._fill(rows, skip, size, next_line)
                if chunk.rows or chunk.rejected:
                    pipe.send(self.encode(chunk, position))
                    next_line = chunk.last_line + 1
                if done:
                    break
                size = chunk_rows
            pipe.send(None)
        except (ValueError, OSError) as exc:
            pipe.send(exc)
        finally:
            pipe.close()


def _read_in_process(
    reader: RowReader,
    path: Path,
    fmt: str,
    template_version: str | None,
    skip: Skip,
    chunk_rows: int,
    pipe: Any,
) -> None:
    # A chunk holds hundreds of thousands of small containers and no reference cycles: the cyclic
    # garbage collector would rescan them all again and again (it more than doubled the time).
    gc.disable()
    reader.stream(path, fmt, template_version, skip, chunk_rows, pipe)


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
        records = chunk.records
        rejected = list(chunk.rejected)
        phases: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(phase: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            phases[phase] = now - clock
            clock = now

        async with conn.transaction():
            conflicting: set[str] = set()
            if records and self.direct:
                # The common case, a file of new identifiers: COPY straight into handles. A row
                # that already exists fails the whole COPY; then this chunk and the rest of the
                # file go through the staging table, which sorts out existing rows one by one.
                try:
                    async with conn.transaction():
                        await conn.copy_records_to_table(
                            "handles", records=records, columns=["key", "handle", "prefix", "vals"]
                        )
                    lap("copy")
                except asyncpg.UniqueViolationError:
                    self.direct = False
                    lap("copy refused")
            if records and not self.direct:
                await conn.execute(Q["import_staging_create"])
                await conn.copy_records_to_table(
                    "import_staging", records=records, columns=["key", "handle", "prefix", "vals"]
                )
                lap("staging copy")
                inserted = {row[0] for row in await conn.fetch(Q["import_merge"])}
                lap("merge")
                if len(inserted) < len(records):
                    staged = {r[0]: (line, r) for line, r in zip(chunk.lines, records, strict=True)}
                    existed = [key for key in staged if key not in inserted]
                    for key, existing in await conn.fetch(Q["import_conflicts"], existed):
                        conflicting.add(key)
                        line, record = staged[key]
                        if not _same(orjson.loads(existing), orjson.loads(record[3])):
                            rejected.append((line, record[1], "标识已存在且内容不同"))
            added = [r for r in records if r[0] not in conflicting] if conflicting else records
            terms = [t for t in chunk.terms if t[0] not in conflicting] if conflicting else chunk.terms
            if terms:
                await conn.copy_records_to_table(
                    "search_terms", records=terms, columns=["key", "term", "prefix"]
                )
                lap("terms")
            fingerprint = hashlib.sha256()
            for r in added:
                fingerprint.update(r[0].encode())
                fingerprint.update(r[3].encode())
            accepted = len(records) - (len(rejected) - len(chunk.rejected))
            detail = {
                "file": str(path),
                "fileDigest": digest,
                "lines": [chunk.first_line, chunk.last_line],
                "inserted": len(added),
                "accepted": accepted,
                "rejected": len(rejected),
                "sha256": fingerprint.hexdigest(),
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
            if added:
                await conn.execute(Q["notify_many"], CHANNEL, notification_payloads([r[0] for r in added]))
                per_prefix: dict[str, int] = {}
                for r in added:
                    per_prefix[r[2]] = per_prefix.get(r[2], 0) + 1
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
        reader = await self.load_context()
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
        new_report = not report.exists() or not ranges
        # fork starts the reader at once; the child only reads the file and writes to the pipe, and
        # multiprocessing ends it with os._exit, so it never touches the parent's connection.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context: Any = multiprocessing.get_context(method)
        receiving, sending = context.Pipe(duplex=False)
        process = context.Process(
            target=_read_in_process,
            args=(reader, path, fmt, template_version, skip, chunk_rows, sending),
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
            with open(report, "w" if new_report else "a", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                if new_report:
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
                    totals.accepted += accepted
                    totals.rejected += len(rejected)
                    totals.rows = max(totals.rows, chunk.last_line)
                    writer.writerows(rejected)
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
            process.join(5)
            if process.is_alive():
                process.kill()
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
    """Write every handle under a prefix, in the format `import` reads; returns the count."""
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
                writer.writerow([row[0], orjson.dumps(plain).decode()])
            else:
                item: dict[str, Any] = {"handle": row[0], "value": plain}
                if version:
                    item["templateVersion"] = version
                out.write(orjson.dumps(item).decode() + "\n")
            count += 1
    return count
