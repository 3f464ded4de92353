"""The write policy on its own (no database): the rules of resolver/core/policy.py, one by one.
The same rules over every real write path are in tests/security/test_privilege.py."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from resolver.config import Limits
from resolver.core.errors import HandleError
from resolver.core.handles import parse_handle
from resolver.core.permissions import ALL, NONE, Identity, Perm, granted_by_change
from resolver.core.policy import OWNER_RIGHTS, Action, Caller, check_write


class Owner(NamedTuple):
    prefix: str
    state: int
    enterprise_id: int


NODE_ADMIN = Caller(Identity(300, "0.na/88.123", "0.NA/88.123"), node_admin=True)
PREFIX_ADMIN = Caller(Identity(300, "0.na/88.123.1", "0.NA/88.123.1"), node_admin=False)
USER_A = Caller(Identity(0, "user:1", "a", actor="user:a", enterprise_id=1), node_admin=False)
ENABLED_A = Owner("88.123.1", 1, 1)
DISABLED_A = Owner("88.123.1", 0, 1)
ENTERPRISE_RIGHTS = ALL & ~(Perm.ADD_PREFIX | Perm.DELETE_PREFIX)


def name(text: str):
    return parse_handle(text, Limits())


def allowed(caller, handle, owner, action, needed, have=NONE, grants=NONE) -> bool:
    try:
        check_write(caller, name(handle), owner, action, needed, have, grants)
    except HandleError as exc:
        assert exc.rc == 401
        return False
    return True


def test_nothing_is_written_under_a_prefix_that_is_not_enabled():
    for caller in (NODE_ADMIN, PREFIX_ADMIN, USER_A):
        assert not allowed(caller, "88.123.1/x", DISABLED_A, Action.CHANGE, Perm.MODIFY_VALUE, ALL)
        assert not allowed(caller, "0.NA/88.123.1", DISABLED_A, Action.CHANGE, Perm.ADD_VALUE, ALL)


def test_prefix_records_are_the_node_administrators():
    assert not allowed(PREFIX_ADMIN, "0.NA/88.123.1", ENABLED_A, Action.CHANGE, Perm.ADD_ADMIN, ALL)
    assert not allowed(PREFIX_ADMIN, "0.NA/88.123.1.9", ENABLED_A, Action.CREATE, Perm.ADD_PREFIX, ALL)
    assert not allowed(USER_A, "0.NA/88.123.1.9", ENABLED_A, Action.CREATE, Perm.ADD_PREFIX)
    assert allowed(NODE_ADMIN, "0.NA/88.123.1", ENABLED_A, Action.CHANGE, Perm.ADD_VALUE)
    assert allowed(NODE_ADMIN, "0.NA/88.123.1.9", ENABLED_A, Action.CREATE, Perm.ADD_PREFIX)
    assert allowed(NODE_ADMIN, "0.NA/88.123.77", None, Action.DELETE, Perm.DELETE_PREFIX)


@pytest.mark.parametrize("action", [Action.CREATE, Action.DELETE])
def test_an_allocated_prefixs_record_lives_and_dies_with_the_operator_api(action):
    assert not allowed(NODE_ADMIN, "0.NA/88.123.1", ENABLED_A, action, Perm.ADD_PREFIX)


def test_enterprise_users_write_their_own_identifiers_with_owner_rights_only():
    assert allowed(USER_A, "88.123.1/x", ENABLED_A, Action.CREATE, Perm.ADD_HANDLE)
    assert not allowed(USER_A, "88.123.2/x", Owner("88.123.2", 1, 2), Action.CREATE, Perm.ADD_HANDLE)
    assert not allowed(USER_A, "88.123/x", None, Action.CREATE, Perm.ADD_HANDLE)
    assert not allowed(USER_A, "88.123.1/x", ENABLED_A, Action.CHANGE, Perm.MODIFY_ADMIN)
    assert OWNER_RIGHTS & (Perm.ADD_ADMIN | Perm.MODIFY_ADMIN | Perm.REMOVE_ADMIN) == NONE


def test_other_identities_need_the_bits_and_grant_only_bits_they_hold():
    assert allowed(
        PREFIX_ADMIN,
        "88.123.1/x",
        ENABLED_A,
        Action.CHANGE,
        Perm.ADD_ADMIN,
        ENTERPRISE_RIGHTS,
        Perm.ADD_HANDLE,
    )
    assert not allowed(
        PREFIX_ADMIN, "88.123.1/x", ENABLED_A, Action.CHANGE, Perm.ADD_ADMIN, ENTERPRISE_RIGHTS, ALL
    )
    assert not allowed(
        PREFIX_ADMIN, "88.123.1/x", ENABLED_A, Action.DELETE, Perm.DELETE_HANDLE, Perm.ADD_HANDLE
    )


def admin(index: int, bits: str) -> dict[str, object]:
    value = {"handle": "0.NA/88.123.1", "index": 300, "permissions": bits}
    return {"index": index, "type": "HS_ADMIN", "data": {"format": "admin", "value": value}, "ttl": 86400}


def test_what_a_change_grants_is_the_bits_of_admin_values_it_adds_or_alters():
    kept = admin(100, "000000000011")
    assert granted_by_change([kept], [kept]) == NONE
    assert granted_by_change([kept], [kept, admin(101, "000000010000")]) == Perm.MODIFY_VALUE
    assert granted_by_change([kept], [admin(100, "111111111111")]) == ALL
