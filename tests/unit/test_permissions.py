"""Permission bits, identity matching, groups, and what a change needs."""

from __future__ import annotations

from datetime import UTC, datetime

from resolver.config import Limits
from resolver.core.permissions import Identity, Perm, granted, needed_for_change, parse_bits
from resolver.core.values import parse_values

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def admin(handle, index, perms, at=100):
    return {
        "index": at,
        "type": "HS_ADMIN",
        "data": {
            "format": "admin",
            "value": {"handle": handle, "index": index, "permissions": perms},
        },
    }


def values(*raw):
    return parse_values(list(raw), Limits(), NOW)


def test_bits_are_most_significant_first():
    assert parse_bits("000000000001") == Perm.ADD_HANDLE
    assert parse_bits("100000000000") == Perm.LIST_HANDLES
    assert parse_bits("011111110011") == Perm(0b011111110011)
    # a short string is read from the right (GsonUtility.AdminRecordGsonTypeAdapter.permsStringToArray);
    # this test expected READ_VALUE from "01" before, which the reference proves wrong
    assert parse_bits("01") == Perm.ADD_HANDLE
    assert parse_bits("0111") == Perm.ADD_HANDLE | Perm.DELETE_HANDLE | Perm.ADD_PREFIX


def test_direct_match_and_any_index():
    me = Identity(300, "0.na/88.123.45", "0.NA/88.123.45")
    record = values(admin("0.NA/88.123.45", 300, "000000000011"))
    assert granted(me, [record], {}) == Perm.ADD_HANDLE | Perm.DELETE_HANDLE
    assert granted(Identity(301, me.key, me.text), [record], {}) == Perm(0)
    assert granted(me, [values(admin("0.NA/88.123.45", 0, "000000000001"))], {}) == Perm.ADD_HANDLE


def test_group_membership_through_vlist():
    me = Identity(300, "0.na/88.123.45", "0.NA/88.123.45")
    handle_values = values(admin("0.NA/88.123.45", 200, "000000010000"))
    prefix_values = values(
        {
            "index": 200,
            "type": "HS_VLIST",
            "data": {"format": "vlist", "value": [{"handle": "0.NA/88.123.45", "index": 300}]},
        }
    )
    assert granted(me, [handle_values], {"0.na/88.123.45": prefix_values}) == Perm.MODIFY_VALUE
    stranger = Identity(300, "0.na/88.123.99", "0.NA/88.123.99")
    assert granted(stranger, [handle_values], {"0.na/88.123.45": prefix_values}) == Perm(0)


def test_needed_for_change():
    old = values({"index": 1, "type": "URL", "data": "a"}, admin("0.NA/1", 300, "1"))
    assert needed_for_change(old, old) == Perm(0)
    changed = values({"index": 1, "type": "URL", "data": "b"}, admin("0.NA/1", 300, "1"))
    assert needed_for_change(old, changed) == Perm.MODIFY_VALUE
    added = values(
        {"index": 1, "type": "URL", "data": "a"},
        {"index": 2, "type": "X", "data": "x"},
        admin("0.NA/1", 300, "1"),
    )
    assert needed_for_change(old, added) == Perm.ADD_VALUE
    assert needed_for_change(old, old[:1]) == Perm.REMOVE_ADMIN
    assert needed_for_change(old[:1], old) == Perm.ADD_ADMIN
