"""Permission strings as the reference reads and encodes them.

HS_ADMIN: net/handle/hdllib/GsonUtility.java AdminRecordGsonTypeAdapter (permsElementToArray,
permsStringToArray, permsPrimitiveToArray, permsArrayToArray, permsArrayToString), AdminRecord.java
(ADD_HANDLE = 0 ... LIST_HANDLES = 11) and Encoder.java encodeAdminRecord / decodeAdminRecord
(PERM_ADD_HANDLE 0x0001 ... PERM_LIST_HDLS 0x0800). Values: GsonUtility.java
HandleValueGsonTypeAdapter (deserializePermissions, serializePermissions) and Encoder.java
encodeHandleValue (PERM_ADMIN_READ 0x8 ... PERM_PUBLIC_WRITE 0x1).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.config import Limits
from resolver.core.errors import RC, HandleError
from resolver.core.permissions import Perm, parse_bits
from resolver.core.structured import InvalidStructure, admin_permissions
from resolver.core.values import parse_value, value_permissions
from resolver.native import protocol as p

NOW = datetime(2026, 11, 21, tzinfo=UTC)
LIMITS = Limits()

# AdminRecord.java: the index of each permission in perms[]; Encoder.java: its bit on the wire.
REFERENCE_ORDER = [
    ("ADD_HANDLE", 0x0001),
    ("DELETE_HANDLE", 0x0002),
    ("ADD_DERIVED_PREFIX", 0x0004),
    ("DELETE_DERIVED_PREFIX", 0x0008),
    ("MODIFY_VALUE", 0x0010),
    ("REMOVE_VALUE", 0x0020),
    ("ADD_VALUE", 0x0040),
    ("MODIFY_ADMIN", 0x0080),
    ("REMOVE_ADMIN", 0x0100),
    ("ADD_ADMIN", 0x0200),
    ("READ_VALUE", 0x0400),
    ("LIST_HANDLES", 0x0800),
]


def reference_perms_string_to_array(perms: str) -> list[bool]:
    """GsonUtility.AdminRecordGsonTypeAdapter.permsStringToArray, line for line."""
    if perms == "*":
        return [True] * 12
    res = [False] * 12
    for i in range(12):
        if len(perms) <= i:
            break
        res[i] = perms[len(perms) - 1 - i] == "1"
    return res


def reference_perms_array_to_string(perms: list[bool]) -> str:
    """GsonUtility.AdminRecordGsonTypeAdapter.permsArrayToString: perms[11] first."""
    return "".join("1" if perms[i] else "0" for i in range(len(perms) - 1, -1, -1))


def reference_encode_admin_mask(perms: list[bool]) -> int:
    """Encoder.encodeAdminRecord: perms[AdminRecord.X] ? PERM_X : 0, or-ed."""
    return sum(bit for (_, bit), granted in zip(REFERENCE_ORDER, perms, strict=True) if granted)


def admin_value(permissions: object) -> dict[str, object]:
    data = {"handle": "0.NA/88.123", "index": 200}
    if permissions is not ...:
        data["permissions"] = permissions
    return {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": data}}


def test_admin_strings_are_read_from_the_right():
    """GsonUtility.AdminRecordGsonTypeAdapter.permsStringToArray: the last character is
    perms[0] = AdminRecord.ADD_HANDLE; missing characters are false."""
    assert admin_permissions("0111") == "000000000111"
    assert admin_permissions("1") == "000000000001"
    assert admin_permissions("") == "000000000000"
    assert admin_permissions("011111110011") == "011111110011"
    assert parse_bits(admin_permissions("0111")) == Perm.ADD_HANDLE | Perm.DELETE_HANDLE | Perm.ADD_PREFIX
    for text in ["0111", "1", "10", "100000000000", "111111110011", ""]:
        assert admin_permissions(text) == reference_perms_array_to_string(
            reference_perms_string_to_array(text)
        )


def test_admin_star_booleans_and_missing():
    """GsonUtility.AdminRecordGsonTypeAdapter.permsStringToArray ("*") and permsPrimitiveToArray
    (true: all, false: none); permsElementToArray: null or absent, none."""
    assert admin_permissions("*") == "1" * 12
    assert admin_permissions(True) == "1" * 12
    assert admin_permissions(False) == "0" * 12
    assert admin_permissions(None) == "0" * 12
    stored = parse_value(admin_value(...), LIMITS, NOW)
    assert stored["data"]["value"]["permissions"] == "0" * 12


def test_admin_integers_are_bit_masks():
    """GsonUtility.AdminRecordGsonTypeAdapter.permsPrimitiveToArray: an integer is read as
    permsStringToArray(Integer.toBinaryString(n)), so bit i of n is perms[i]."""
    assert admin_permissions(1) == "000000000001"
    assert admin_permissions(7) == "000000000111"
    assert admin_permissions(0xFFF) == "1" * 12
    assert admin_permissions(0) == "0" * 12
    for n in (1, 7, 0x400, 0xFF3, 0xFFF):
        assert admin_permissions(n) == reference_perms_array_to_string(
            reference_perms_string_to_array(bin(n)[2:])
        )


def test_admin_lists_start_at_add_handle():
    """GsonUtility.AdminRecordGsonTypeAdapter.permsArrayToArray: element i is perms[i]
    (isTruthy), so the list runs the other way round from the string."""
    assert admin_permissions([True]) == "000000000001"
    assert admin_permissions([True, True, True, False]) == "000000000111"
    assert admin_permissions([0, 1]) == "000000000010"
    assert admin_permissions([False] * 10 + [True]) == "010000000000"  # READ_VALUE
    assert admin_permissions([]) == "0" * 12


@pytest.mark.parametrize(
    "raw", ["2", "01x1", "0" * 13, "**", 4096, -1, 1.5, [True] * 13, ["1"], [None], {"add": True}]
)
def test_other_admin_permissions_are_refused(raw):
    """The reference would read these by guessing (a '2' is false, a 13th bit dropped, "0" in a
    list true): refused with rc 202 instead."""
    with pytest.raises(InvalidStructure, match="admin permissions"):
        admin_permissions(raw)
    with pytest.raises(HandleError) as refused:
        parse_value(admin_value(raw), LIMITS, NOW)
    assert refused.value.rc == RC.INVALID_VALUE and "permissions" in refused.value.message


@given(perms=st.lists(st.booleans(), min_size=12, max_size=12))
def test_admin_native_encoding_is_the_reference_bit_layout(perms):
    """Round trip against the reference: the canonical string (permsArrayToString), the mask
    Encoder.encodeAdminRecord writes, and back through Encoder.decodeAdminRecord's bit tests; each
    permission keeps its meaning in our Perm flags."""
    text = reference_perms_array_to_string(perms)
    for form in (text, perms, int(text, 2)):
        stored = parse_value(admin_value(form), LIMITS, NOW)
        assert stored["data"]["value"]["permissions"] == text
        data = p.value_data(stored["data"])
        (mask,) = struct.unpack(">H", data[:2])
        assert mask == reference_encode_admin_mask(perms)
        assert [bool(mask & bit) for _, bit in REFERENCE_ORDER] == perms  # decodeAdminRecord
        flags = parse_bits(stored["data"]["value"]["permissions"])
        names = {"ADD_DERIVED_PREFIX": "ADD_PREFIX", "DELETE_DERIVED_PREFIX": "DELETE_PREFIX"}
        assert [Perm[names.get(name, name)] in flags for name, _ in REFERENCE_ORDER] == perms
        assert data[2:] == struct.pack(">I", 11) + b"0.NA/88.123" + struct.pack(">I", 200)


def test_value_permissions_are_read_from_the_right():
    """GsonUtility.HandleValueGsonTypeAdapter.deserializePermissions: the last character is
    public-write, then public-read, admin-write, admin-read; bits not given keep HandleValue's
    defaults (1110); "*" is all four. Every character counts, the first of a four-character string
    included (see value_permissions for the reference's off-by-one there)."""
    assert value_permissions("1110", "1110", 1) == "1110"
    assert value_permissions("0110", "1110", 1) == "0110"
    assert value_permissions("1", "1110", 1) == "1111"
    assert value_permissions("0", "1110", 1) == "1110"
    assert value_permissions("00", "1110", 1) == "1100"
    assert value_permissions("000", "1110", 1) == "1000"
    assert value_permissions("", "1110", 1) == "1110"
    assert value_permissions("*", "1110", 1) == "1111"
    assert value_permissions(None, "1100", 1) == "1100"
    assert value_permissions("1", "1100", 1) == "1101"  # an HS_SECKEY keeps its own default
    stored = parse_value({"index": 1, "type": "URL", "data": "https://x/", "permissions": "0"}, LIMITS, NOW)
    assert "permissions" not in stored  # the default, not written out
    stored = parse_value({"index": 1, "type": "URL", "data": "https://x/", "permissions": "00"}, LIMITS, NOW)
    assert stored["permissions"] == "1100"


@pytest.mark.parametrize("raw", ["11111", "1112", "**", 1110, True, ["1"], {"x": 1}])
def test_other_value_permissions_are_refused(raw):
    with pytest.raises(HandleError) as refused:
        parse_value({"index": 1, "type": "T", "data": "x", "permissions": raw}, LIMITS, NOW)
    assert refused.value.rc == RC.INVALID_VALUE and "permissions" in refused.value.message


@given(bits=st.lists(st.booleans(), min_size=4, max_size=4))
def test_value_native_encoding_is_the_reference_bit_layout(bits):
    """GsonUtility.HandleValueGsonTypeAdapter.serializePermissions writes adminRead, adminWrite,
    publicRead, publicWrite; Encoder.encodeHandleValue packs them as 0x8, 0x4, 0x2, 0x1 in the
    octet after the TTL."""
    admin_read, admin_write, public_read, public_write = bits
    text = "".join("1" if b else "0" for b in bits)
    stored = parse_value({"index": 1, "type": "T", "data": "x", "permissions": text}, LIMITS, NOW)
    encoded = p.encode_value(stored)
    octet = encoded[13]  # index 4, timestamp 4, ttl type 1, ttl 4
    expected = (8 if admin_read else 0) | (4 if admin_write else 0) | (2 if public_read else 0)
    assert octet == expected | (1 if public_write else 0)
