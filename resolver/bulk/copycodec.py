"""Postgres's binary COPY format, for rows of text (and json) fields: what the reader process
builds and the writer sends as it is (store/imports.py)."""

from __future__ import annotations

import struct
from collections.abc import Iterator

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
