"""The reader process: reads an import file in chunks, validates each row against the node's
prefixes and templates, and hands each chunk to the writer as the bytes of a binary COPY.

It needs no database: it runs in a process of its own while the importer writes."""

from __future__ import annotations

import contextlib
import csv
import gc
import hashlib
import io
import logging
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from resolver.bulk import encodings
from resolver.bulk.columns import Shape
from resolver.bulk.copycodec import COPY_HEADER, COPY_TRAILER, copy_row
from resolver.bulk.resume import Skip
from resolver.bulk.rows import Prepared, RowItem, csv_cells, jsonl_rows, sheet_rows
from resolver.bulk.sheets import Workbook, header_of
from resolver.bulk.slots import ChunkSlots, EncodedChunk, Rejection
from resolver.bulk.userfiles import open_regular
from resolver.config import Config
from resolver.core.errors import RC, HandleError, in_chinese
from resolver.core.handles import HandleName, NodeScope, fold, has_control_characters, parse_handle
from resolver.core.permissions import ALL, NONE, Identity, Perm
from resolver.core.policy import Action, Caller, check_write, governing_owner, owner_candidates
from resolver.core.search import search_terms
from resolver.core.templates import Template, check_values, pick_template, template_version_of
from resolver.core.values import StoredValue, timestamp
from resolver.store.rows import PrefixInfo

CHUNK_ROWS = 50_000
FIRST_CHUNK_ROWS = 10_000
LAST_CHUNK_ROWS = 5_000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadPlan:
    """What the reader process reads: the file, its format and template, the lines to skip (a
    resumed import) and the most rows in a chunk."""

    path: Path
    fmt: str
    template_version: str | None
    skip: Skip
    chunk_rows: int
    encoding: str | None = None  # None: chosen from the file (resolver.bulk.encodings)
    sheet: str | None = None  # a workbook's sheet (None: the first)


@dataclass
class _Chunk:
    first_line: int
    rows: list[tuple[int, str, str, str, bytes, list[str]]] = field(
        default_factory=list
    )  # line, key, handle, prefix, values JSON, search terms
    rejected: list[Rejection] = field(default_factory=list)
    last_line: int = 0


def _start_of_file() -> int:
    return 0


class RowReader:
    """Reads a file and validates its rows against the node's prefixes and templates.

    It needs no database: it runs in a process of its own while the importer writes.
    """

    def __init__(
        self,
        config: Config,
        prefixes: dict[str, PrefixInfo],
        templates: dict[tuple[str, str], Template],
        signing_key: int | None = None,
    ) -> None:
        self.config = config
        self.scope = NodeScope(config.node_prefix)
        self.node_prefix = fold(config.node_prefix)
        self.caller = Caller(
            Identity(300, self.scope.node_prefix_handle, f"0.NA/{config.node_prefix}", actor="import"),
            node_admin=True,
        )
        self.search_types = frozenset(config.search_types)
        self.prefixes = prefixes
        self.templates = templates
        # the node key that signs the rows of signed prefixes (its certificates are in place:
        # Importer.load_context); None: no key here, and rows of signed prefixes are rejected
        self.signing_key = signing_key
        self._signer: Any = None  # RecordSigning, loaded in the reader process when first needed
        # handle prefix -> the signed enterprise prefix governing it (None: not signed)
        self._signed_under: dict[str, str | None] = {}
        # Prefixes (as written) already found valid, served here and enabled.
        self._prefix_checked: dict[str, str] = {}
        # Data rows up to this line were imported by an earlier run: read past them unparsed.
        self.skip = Skip()
        # How far into the file the reading is (asked once a chunk, not once a row: it is a syscall).
        self._tell: Callable[[], int] = _start_of_file  # a plain function: the reader is pickled under spawn

    def _admit(self, name: HandleName) -> None:
        """The write policy, as for every API (the registry's admit): the importer writes as the
        node operator, under the enterprise prefix that governs the handle."""
        owner = governing_owner(owner_candidates(self.scope, name), self.prefixes)
        check_write(self.caller, name, owner, Action.CREATE, Perm.ADD_HANDLE, ALL, NONE)
        self._signed_under[name.prefix] = owner.prefix if owner is not None and owner.signed else None
        if owner is None and name.prefix != self.node_prefix:
            # Bulk registrations belong to an enterprise: under no allocated prefix, a row would
            # be an identifier no enterprise answers for (the node's own prefix is the operator's).
            raise HandleError(
                RC.INSUFFICIENT_PERMISSIONS,
                f"前缀 {name.prefix} 未分配给任何企业：请先经运营接口（/admin/prefixes）分配并启用该前缀，再导入",
            )

    # -- reading rows --------------------------------------------------------------------------

    def rows(
        self,
        path: Path,
        fmt: str,
        template_version: str | None,
        encoding: str | None = None,
        sheet: str | None = None,
    ) -> Iterator[tuple[int, str, RowItem, list[str] | str]]:
        """(line number, handle as written, values or an error, the row as read) of the data rows."""
        with open_regular(path) as raw:
            self._tell = raw.tell
            yield from self._rows_of(raw, path, fmt, template_version, encoding, sheet)
        end = path.stat().st_size
        self._tell = lambda: end

    def shape(
        self, path: Path, fmt: str, template_version: str | None, encoding: str | None, sheet: str | None
    ) -> Shape | None:
        """What the header of a CSV file or a workbook says (None: JSON Lines, or an empty file);
        raises ValueError for a header that cannot be read."""
        if fmt == "jsonl":
            return None
        with open_regular(path) as raw:
            if fmt == "xlsx":
                header = header_of(raw, sheet)
            else:
                chosen = encodings.choose(raw, encoding)
                text = io.TextIOWrapper(raw, encoding=chosen, errors=encodings.ERRORS, newline="")
                try:
                    header = next(csv.reader(text), [])
                except csv.Error as exc:
                    raise ValueError(f"表头无法读取：{exc}") from None
                refusal = encodings.undecodable(header, 1, chosen)
                if refusal is not None:
                    raise ValueError(refusal)
        return Shape.from_header(header, template_version, self.templates) if header else None

    def _rows_of(
        self,
        raw: BinaryIO,
        path: Path,
        fmt: str,
        template_version: str | None,
        encoding: str | None,
        sheet: str | None,
    ) -> Iterator[tuple[int, str, RowItem, list[str] | str]]:
        stamp = timestamp(datetime.now(UTC))
        if fmt == "xlsx":
            book = Workbook(raw, sheet)
            self._tell = book.position(path.stat().st_size)
            yield from self._sheet(book.rows(), template_version, stamp, None, False)
            return
        chosen = encodings.choose(raw, encoding)
        text = io.TextIOWrapper(raw, encoding=chosen, errors=encodings.ERRORS, newline="")
        try:
            if fmt == "jsonl":
                yield from jsonl_rows(text, self.config.limits, self.skip, chosen)
            else:
                yield from self._sheet(csv_cells(text), template_version, stamp, chosen, True)
        finally:
            text.detach()  # the file stays the caller's to close (a wrapper dropped first warns)

    def _sheet(
        self,
        cells: Iterator[tuple[int, list[str] | str]],
        template_version: str | None,
        stamp: str,
        chosen: str | None,
        neutralised: bool,
    ) -> Iterator[tuple[int, str, RowItem, list[str]]]:
        yield from sheet_rows(
            cells,
            template_version,
            stamp,
            limits=self.config.limits,
            templates=self.templates,
            search_types=self.search_types,
            skip=self.skip,
            encoding=chosen,
            neutralised=neutralised,
        )

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
                check_values(pick_template(self.templates, prefix, version), values)
        return fold(handle), handle, prefix

    def _fill(
        self,
        rows: Iterator[tuple[int, str, RowItem, list[str] | str]],
        skip: Skip,
        chunk_rows: int,
        first_line: int,
    ) -> tuple[_Chunk, bool]:
        """Read and validate the next chunk of rows, the lines from `first_line` on."""
        started = time.perf_counter()
        chunk = _Chunk(first_line=first_line)
        seen: set[str] = set()
        search_types = self.search_types
        for line, handle, item, original in rows:
            if line in skip:
                continue
            chunk.last_line = line
            if isinstance(item, str):
                chunk.rejected.append((line, handle, item, original))
            else:
                try:
                    key, shown, prefix = self.validate(handle, item)
                    if key in seen:
                        raise HandleError(RC.HANDLE_ALREADY_EXISTS, "同一文件的本批次中该标识重复出现")
                    seen.add(key)
                except HandleError as exc:
                    chunk.rejected.append((line, handle, in_chinese(exc), original))
                else:
                    if isinstance(item, Prepared):
                        data, terms = item
                    else:
                        data, terms = (
                            orjson.dumps(item),
                            list(dict.fromkeys(search_terms(item, search_types))),
                        )
                    signed_prefix = self._signed_under.get(prefix)
                    if signed_prefix is not None:
                        try:
                            data = self._signed(shown, signed_prefix, data)
                        except HandleError as exc:
                            chunk.rejected.append((line, handle, in_chinese(exc), original))
                            continue
                    chunk.rows.append((line, key, shown, prefix, data, terms))
            if len(chunk.rows) + len(chunk.rejected) >= chunk_rows:
                log.debug("read chunk %d-%d in %.2fs", chunk.first_line, line, time.perf_counter() - started)
                return chunk, False
        return chunk, True

    def _signed(self, handle: str, prefix: str, data: bytes) -> bytes:
        """The values JSON of a row of the signed prefix `prefix`, with the node's HS_SIGNATURE
        (what every API's write adds: resolver/services/signed_writes.py)."""
        if self.signing_key is None:
            raise HandleError(
                RC.SERVER_TOO_BUSY,
                f"前缀 {prefix} 已开启可信解析，导入需要节点的签名密钥：请以 --key-dir（或 --data-dir）指明节点的密钥目录",
            )
        if self._signer is None:
            from resolver.keys import Signers
            from resolver.services.record_signing import RecordSigning

            self._signer = RecordSigning(Signers(self.config.keys_path), self.config.node_prefix, _no_cache)
        from resolver.services.record_signing import refuse_index_400

        values = orjson.loads(data)
        refuse_index_400([v for v in values if str(v.get("type", "")).upper() != "HS_SIGNATURE"], prefix)
        return orjson.dumps(self._signer.sign(handle, prefix, values, self.signing_key))

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
            rows = self.rows(path, plan.fmt, plan.template_version, plan.encoding, plan.sheet)
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


def _no_cache(_keys: list[str]) -> None:
    """The reader writes no trust values itself (the importer saw to them): no cache to tell."""


def read_in_process(
    reader: RowReader, plan: ReadPlan, pipe: Any, slots: ChunkSlots | None, writer_end: Any
) -> None:
    """The reader process's body: streams the chunks of `plan` to the writer."""
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
