"""The typed rows the store hands out, and the encoding of stored values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from resolver.core.values import StoredValue


class Record:
    """A stored handle: as first registered, and its values."""

    __slots__ = ("handle", "values")

    def __init__(self, handle: str, values: list[StoredValue]) -> None:
        self.handle = handle
        self.values = values

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and (self.handle, self.values) == (
            other.handle,
            other.values,
        )

    def __repr__(self) -> str:
        return f"Record({self.handle!r}, {self.values!r})"


def record_from_row(row: Any) -> Record:
    return Record(row[1], orjson.loads(row[2]))


def encode_values(values: list[StoredValue]) -> str:
    """The jsonb text of a list of stored values."""
    return orjson.dumps(values).decode()


@dataclass(frozen=True, slots=True)
class PrefixInfo:
    """An enterprise prefix: its state and owner."""

    prefix: str
    state: int
    enterprise_id: int
    signed: bool = False  # its records carry the node's HS_SIGNATURE (schema/0014)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit trail, written with the transaction that it describes."""

    actor: str
    operation: str
    handle: str | None = None
    enterprise_id: int | None = None
    before: object = None
    after: object = None
    detail: object = None


class TemplateRow(NamedTuple):
    """One version of a prefix's data template as stored: its items as JSON text."""

    prefix: str
    version: str
    industry_codes: list[str]
    items: str
