"""Who may do what: HS_ADMIN permission bits and how identities match admin references."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntFlag

from resolver.core.handles import fold
from resolver.core.values import StoredValue

HS_ADMIN_KEY = "hs_admin"
HS_VLIST_KEY = "hs_vlist"


class Perm(IntFlag):
    """The twelve HS_ADMIN permission bits (bit 0 = add-handle ... bit 11 = list-handles)."""

    ADD_HANDLE = 1 << 0
    DELETE_HANDLE = 1 << 1
    ADD_PREFIX = 1 << 2
    DELETE_PREFIX = 1 << 3
    MODIFY_VALUE = 1 << 4
    REMOVE_VALUE = 1 << 5
    ADD_VALUE = 1 << 6
    MODIFY_ADMIN = 1 << 7
    REMOVE_ADMIN = 1 << 8
    ADD_ADMIN = 1 << 9
    READ_VALUE = 1 << 10
    LIST_HANDLES = 1 << 11


ALL = Perm(0xFFF)
NONE = Perm(0)


def parse_bits(bits: str) -> Perm:
    """`"011111110011"` (most significant first) -> the flags it grants. A shorter string is read
    from the right, its last character bit 0 (add-handle), as the reference does
    (GsonUtility.AdminRecordGsonTypeAdapter.permsStringToArray); stored values always have twelve."""
    return Perm(int(bits[-12:].rjust(12, "0"), 2))


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: `index:handle`; index 0 means any index of that handle."""

    index: int
    key: str
    text: str
    # Who acts, for the audit trail, when it is not the Handle identity itself (an enterprise user).
    actor: str = ""
    # The enterprise an enterprise API user belongs to.
    enterprise_id: int | None = None

    @property
    def name(self) -> str:
        """How the audit trail names this caller."""
        return self.actor or f"{self.index}:{self.text}"

    def matches(self, ref_key: str, ref_index: int) -> bool:
        """True when an admin reference `ref_index:ref_key` names this identity."""
        return ref_key == self.key and (ref_index == 0 or self.index == 0 or ref_index == self.index)


def _admin_refs(values: Iterable[StoredValue]) -> Iterable[tuple[str, int, Perm]]:
    for value in values:
        if fold(value["type"]) == HS_ADMIN_KEY and value["data"].get("format") == "admin":
            admin = value["data"]["value"]
            yield fold(admin["handle"]), int(admin["index"]), parse_bits(admin["permissions"])


def referenced_handles(records: Iterable[Sequence[StoredValue]]) -> set[str]:
    """Keys of the handles that admin references in these records point at (for group lookups)."""
    return {key for values in records for key, _, _ in _admin_refs(values)}


def _in_group(
    identity: Identity,
    ref_key: str,
    ref_index: int,
    records: Mapping[str, Sequence[StoredValue]],
    depth: int = 0,
) -> bool:
    """True when the value at `ref_index:ref_key` is an HS_VLIST naming the identity."""
    if depth > 3:
        return False
    for value in records.get(ref_key, ()):
        if value["index"] != ref_index or fold(value["type"]) != HS_VLIST_KEY:
            continue
        members = value["data"].get("value")
        if not isinstance(members, list):
            return False
        for member in members:
            mkey, mindex = fold(member["handle"]), int(member["index"])
            if identity.matches(mkey, mindex) or _in_group(identity, mkey, mindex, records, depth + 1):
                return True
    return False


def granted(
    identity: Identity,
    admin_sources: Iterable[Sequence[StoredValue]],
    records: Mapping[str, Sequence[StoredValue]],
) -> Perm:
    """The union of permissions that the HS_ADMIN values in `admin_sources` give `identity`.

    `records` holds the handles those admin values reference, to resolve HS_VLIST groups.
    """
    perms = NONE
    for values in admin_sources:
        for ref_key, ref_index, bits in _admin_refs(values):
            if identity.matches(ref_key, ref_index) or _in_group(identity, ref_key, ref_index, records):
                perms |= bits
    return perms


def needed_for_change(old: Sequence[StoredValue], new: Sequence[StoredValue]) -> Perm:
    """The permissions needed to turn the values `old` into `new` (HS_ADMIN values need admin bits)."""
    before = {v["index"]: v for v in old}
    after = {v["index"]: v for v in new}
    needed = NONE
    for index, value in after.items():
        is_admin = fold(value["type"]) == HS_ADMIN_KEY
        previous = before.get(index)
        if previous is None:
            needed |= Perm.ADD_ADMIN if is_admin else Perm.ADD_VALUE
        elif _content(previous) != _content(value):
            was_admin = fold(previous["type"]) == HS_ADMIN_KEY
            needed |= Perm.MODIFY_ADMIN if (is_admin or was_admin) else Perm.MODIFY_VALUE
    for index, value in before.items():
        if index not in after:
            needed |= Perm.REMOVE_ADMIN if fold(value["type"]) == HS_ADMIN_KEY else Perm.REMOVE_VALUE
    return needed


def _content(value: StoredValue) -> tuple[object, ...]:
    return (
        value["type"],
        value["data"],
        value["ttl"],
        value.get("permissions"),
        value.get("references"),
    )


def admin_bits(values: Iterable[StoredValue]) -> Perm:
    """The union of the permission bits the HS_ADMIN values among `values` grant."""
    perms = NONE
    for _, _, bits in _admin_refs(values):
        perms |= bits
    return perms


def granted_by_change(old: Sequence[StoredValue], new: Sequence[StoredValue]) -> Perm:
    """The permission bits of the HS_ADMIN values that turning `old` into `new` adds or alters."""
    before = {v["index"]: v for v in old}
    return admin_bits(
        v for v in new if (previous := before.get(v["index"])) is None or _content(previous) != _content(v)
    )
