"""Chunks between the reader process and the writer: a chunk's COPY bytes (`EncodedChunk`), and
the shared-memory slots they travel in (`ChunkSlots`)."""

from __future__ import annotations

import contextlib
import mmap
from array import array
from dataclasses import dataclass
from typing import Any, NamedTuple

from resolver.bulk.copycodec import copy_rows

# Bytes of one shared chunk slot: a chunk of CHUNK_ROWS rows of ten values fits.
SLOT_BYTES = 64 << 20


class ChunkRow(NamedTuple):
    """A row of a chunk as the writer decodes it again (only when some rows existed already)."""

    key: str
    handle: str
    prefix: str
    values: str  # JSON
    raw: bytes | memoryview  # the row's COPY bytes


# A rejected row: line, handle, reason, and the row as read (its cells, or its JSON line), or
# what was to be stored (the values JSON) for a row the writer refused.
Rejection = tuple[int, str, str, list[str] | str | bytes]


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
    rejected: list[Rejection]
    # Set when `rows` and `terms` travel in a shared slot: (slot, bytes of rows, bytes of terms).
    slot: tuple[int, int, int] | None = None

    def decoded_rows(self) -> list[ChunkRow]:
        """Each row of the chunk, decoded."""
        return [
            ChunkRow(key, handle, prefix, data, raw)
            for raw, (key, handle, prefix, data) in copy_rows(self.rows)
        ]

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
