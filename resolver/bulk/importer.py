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

The import by job: `reader` (the reader process: validation, chunks), `rows` (parsing CSV and
JSON Lines), `copycodec` (binary COPY), `slots` (chunks in shared memory), `resume` (the lines an
earlier run wrote), `progress` (the progress line), `export`; this module writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from resolver.bulk.copycodec import COPY_HEADER, COPY_TRAILER
from resolver.bulk.encodings import known
from resolver.bulk.export import export
from resolver.bulk.progress import Progress
from resolver.bulk.reader import CHUNK_ROWS, ReadPlan, RowReader, next_chunk_size, read_in_process
from resolver.bulk.report import Report, default_path
from resolver.bulk.resume import Skip
from resolver.bulk.signing import signing_key, unsigned
from resolver.bulk.slots import SLOT_BYTES, ChunkRow, ChunkSlots, EncodedChunk, Rejection
from resolver.bulk.source import detect_format, file_digest
from resolver.bulk.userfiles import RefusedFile, append, create, same_file
from resolver.config import Config
from resolver.core.values import same_content
from resolver.services.statistics import ServedPrefixes, today
from resolver.store import imports
from resolver.store.coherence import Coherence
from resolver.store.connections import Connection
from resolver.store.feed import acknowledgements
from resolver.store.rows import AuditEntry

# What the CLI and the tests import from here.
__all__ = ["CHUNK_ROWS", "ImportResult", "Importer", "Progress", "Skip", "export", "next_chunk_size"]

log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    """What an import did (counts include the chunks of earlier, interrupted runs)."""

    rows: int = 0  # the last line of the file that has been processed
    accepted: int = 0
    rejected: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    report: Path | None = None
    imported_before: bool = False  # the same file was imported to the end before: nothing done


class Importer:
    """Writes what a RowReader (in another process) validated, chunk by chunk, resumably."""

    def __init__(self, config: Config, conn: Connection, *, actor: str = "import") -> None:
        self.config = config
        self.conn = conn
        self.actor = actor
        self.reader: RowReader | None = None
        self.direct = True  # COPY chunks straight into handles until a row turns out to exist
        self.served = ServedPrefixes(config.node_prefix)
        # a chunk is done once every cache has forgotten what it added (resolver.store.coherence)
        self.coherence = Coherence(config.coherence_wait)

    async def load_context(self) -> RowReader:
        """Enterprise prefixes and templates, read once per import."""
        prefixes = {p.prefix: p for p in await imports.enterprise_prefixes(self.conn)}
        self.served = ServedPrefixes(self.config.node_prefix, prefixes)
        templates = await imports.all_templates(self.conn)
        self.reader = RowReader(
            self.config, prefixes, templates, await signing_key(self.conn, self.config, prefixes)
        )
        return self.reader

    def _labelled(self, per_prefix: dict[str, int]) -> dict[str, int]:
        """Registrations per row of the daily counts, labelled as the APIs' are (the nearest
        allocated prefix, else the node prefix), not per handle prefix."""
        labelled: dict[str, int] = {}
        for prefix, count in per_prefix.items():
            label = self.served.label(prefix, True) or self.served.node_prefix
            labelled[label] = labelled.get(label, 0) + count
        return labelled

    async def write_chunk(
        self, conn: Connection, digest: str, chunk: EncodedChunk, path: Path
    ) -> tuple[list[Rejection], int]:
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

        origin = self.coherence.origin()
        token, sequence = origin if origin is not None else ("", 0)
        notified = False
        try:
            notified = await self._chunk_transaction(conn, digest, chunk, path, rejected, token, lap)
        except BaseException:
            if origin is not None:
                self.coherence.forget(sequence)
            raise
        lap("commit")
        if origin is not None:
            if notified:  # acknowledged (and resumable from) only once every cache forgot
                committed_at = time.monotonic()
                await self.coherence.confirm(sequence, await imports.caches_listening(conn), committed_at)
            else:
                self.coherence.forget(sequence)
        log.debug(
            "chunk %d-%d: %s",
            chunk.first_line,
            chunk.last_line,
            " ".join(f"{k} {v:.2f}s" for k, v in phases.items()),
        )
        return rejected, count - (len(rejected) - len(chunk.rejected))

    async def _chunk_transaction(
        self,
        conn: Connection,
        digest: str,
        chunk: EncodedChunk,
        path: Path,
        rejected: list[Rejection],
        origin: str,
        lap: Callable[[str], None],
    ) -> bool:
        """The chunk's transaction (rejected rows appended to `rejected`); True when it notified
        the caches of handles it added."""
        count = len(chunk.lines)
        async with imports.chunk_transaction(conn):
            conflicting: set[str] = set()
            decoded: list[ChunkRow] = []
            if count and self.direct:
                # The common case, a file of new identifiers: COPY straight into handles. A row
                # that already exists fails the whole COPY; then this chunk and the rest of the
                # file go through the staging table, which sorts out existing rows one by one.
                if await imports.copy_new_handles(conn, chunk.rows):
                    lap("copy")
                else:
                    self.direct = False
                    lap("copy refused")
            if count and not self.direct:
                await imports.stage(conn, chunk.rows)
                lap("staging copy")
                inserted = await imports.merge_staged(conn)
                lap("merge")
                if len(inserted) < count:
                    decoded = chunk.decoded_rows()
                    staged = {row.key: (line, row) for line, row in zip(chunk.lines, decoded, strict=True)}
                    existed = [key for key in staged if key not in inserted]
                    for key, existing in await imports.stored_values(conn, existed):
                        conflicting.add(key)
                        line, row = staged[key]
                        if not same_content(
                            unsigned(orjson.loads(existing)), unsigned(orjson.loads(row.values))
                        ):
                            rejected.append((line, row.handle, "标识已存在且内容不同", row.values.encode()))
            if conflicting:
                added = [row for row in decoded if row.key not in conflicting]
                keys = [row.key for row in added]
                terms = [t for t in chunk.decoded_terms() if t[0] not in conflicting]
                if terms:
                    await imports.insert_terms(conn, terms)
                added_digest = hashlib.sha256(
                    b"".join([COPY_HEADER, *(row.raw for row in added), COPY_TRAILER])
                ).hexdigest()
                per_prefix: dict[str, int] = {}
                for row in added:
                    per_prefix[row.prefix] = per_prefix.get(row.prefix, 0) + 1
            else:
                keys = chunk.keys.split("\n") if count else []
                if chunk.terms:
                    await imports.copy_terms(conn, chunk.terms)
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
            await imports.record_chunk(
                conn,
                digest,
                (chunk.first_line, chunk.last_line),
                accepted,
                len(rejected),
                AuditEntry(self.actor, "import.chunk", detail=detail),
            )
            if keys:
                await imports.announce_added(conn, keys, self._labelled(per_prefix), today(), origin)
            lap("record")
        return bool(keys)

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
        encoding: str | None = None,
        sheet: str | None = None,
    ) -> ImportResult:
        """Import a file (resuming an interrupted import of the same file).

        A reader process parses and validates while this process writes: on two cores, Python and
        Postgres work at the same time. Each chunk counts as done once every node's cache has
        confirmed it forgot the handles the chunk added (they may have been remembered as unknown).
        """
        async with acknowledgements(self.config.dsn, self.coherence):
            return await self._run(
                path, fmt, template_version, report, chunk_rows, progress, writers, encoding, sheet
            )

    async def _run(
        self,
        path: Path,
        fmt: str | None,
        template_version: str | None,
        report: Path | None,
        chunk_rows: int,
        progress: Progress | None,
        writers: int,
        encoding: str | None = None,
        sheet: str | None = None,
    ) -> ImportResult:
        started = time.monotonic()
        fmt = detect_format(path, fmt)
        # a name Python does not know is a usage error, before anything starts
        codec = known(encoding) if encoding is not None else None
        report = report or default_path(path, fmt)
        digest = file_digest(path)
        if codec is not None or sheet is not None:  # another reading of the same octets: an import of its own
            digest = hashlib.sha256(f"{digest} {codec} {sheet}".encode()).hexdigest()
        if same_file(report, path):
            raise RefusedFile(f"报告文件 {report} 就是要导入的文件：请用 --report 另指定报告文件")
        reader = await self.load_context()
        # the header is read here too (a header that cannot be read stops the import before it
        # begins), for the report, which repeats it
        shape = reader.shape(path, fmt, template_version, encoding, sheet)
        # A run of this file that began before wrote the start of the report: this one continues it.
        resuming = await imports.import_state(self.conn, digest) is not None
        await imports.start_import(self.conn, digest, str(path))
        state = await imports.import_state(self.conn, digest)
        assert state is not None
        chunks = await imports.committed_chunks(self.conn, digest)
        header_lines = 1 if fmt == "csv" else 0
        ranges = [(c.first_line, c.last_line) for c in chunks]
        if not ranges and state.rows_done:  # an import begun before chunks were recorded one by one
            ranges = [(header_lines + 1, state.rows_done)]
        skip = Skip.from_chunks(ranges, header_lines)
        totals = ImportResult(
            rows=max((last for _, last in ranges), default=0),
            accepted=sum(c.accepted for c in chunks) or state.accepted,
            rejected=sum(c.rejected for c in chunks) or state.rejected,
            resumed_from=skip.upto if ranges else 0,
            report=report if report.exists() else None,
        )
        if state.finished:
            totals.resumed_from, totals.imported_before = 0, True
            totals.seconds = time.monotonic() - started
            return totals
        totals.report = report
        size = path.stat().st_size
        # fork starts the reader at once; the child only reads the file and writes to the pipe, and
        # multiprocessing ends it with os._exit, so it never touches the parent's connection.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context: Any = multiprocessing.get_context(method)
        receiving, sending = context.Pipe(duplex=False)
        # a chunk being written by each writer, one waiting, one being filled
        slots = ChunkSlots(context, writers + 2, SLOT_BYTES) if method == "fork" else None
        process = context.Process(
            target=read_in_process,
            args=(
                reader,
                ReadPlan(path, fmt, template_version, skip, chunk_rows, encoding, sheet),
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
        connections: asyncio.Queue[Connection] = asyncio.Queue()
        connections.put_nowait(self.conn)
        extra: list[Connection] = (
            [await imports.connect_writer(self.config.dsn) for _ in range(writers - 1)]
            if self.config.dsn
            else []
        )
        for conn in extra:
            connections.put_nowait(conn)
        tasks: set[asyncio.Task[None]] = set()
        try:
            # Never written through a link or into a file another name shares (userfiles); every
            # cell written so that a spreadsheet shows it and runs nothing (csvcells).
            with append(report) if resuming else create(report) as out:
                rejections = Report(
                    out, shape, restoring=fmt == "csv" and shape is not None and shape.node_written
                )

                async def write(chunk: EncodedChunk, conn: Connection) -> None:
                    try:
                        rejected, accepted = await imports.retry_deadlocks(
                            lambda: self.write_chunk(conn, digest, chunk, path)
                        )
                    finally:
                        connections.put_nowait(conn)
                        if slots is not None:
                            slots.release(chunk)
                    totals.accepted += accepted
                    totals.rejected += len(rejected)
                    totals.rows = max(totals.rows, chunk.last_line)
                    rejections.write(rejected)
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
                await imports.finish_import(self.conn, digest, totals.rows, totals.accepted, totals.rejected)
                # Fresh statistics for the planner and for the identifiers gauge (pg_class.reltuples).
                await imports.analyze_handles(self.conn)
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
        if not totals.rejected and report is not None:
            # nothing was rejected: no report holding only its header (the name is ours: we made it)
            with contextlib.suppress(FileNotFoundError):
                report.unlink()
            totals.report = None
        totals.seconds = time.monotonic() - started
        return totals
