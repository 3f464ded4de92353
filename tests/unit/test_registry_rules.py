"""The registry's and batches' write rules as tables, run against the in-memory store (no database).

Every table mirrors an integration test that checks the same rule over HTTP and Postgres (named
above each table, and the test function bears its name); those stay the truth, these run in milliseconds and
reach the services directly: `Registry` for the Handle API's writes, `Batches` for the enterprise
API's. Rules that live in front of the services (authentication: anonymous callers, enterprise users
having no Handle identity) are not rows here.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from resolver.cache import Lookup, ResolutionCache
from resolver.config import CacheSettings, Config, Limits
from resolver.core import secrets
from resolver.core.enterprises import PrefixState
from resolver.core.errors import RC, HandleError
from resolver.core.handles import HandleName, fold, parse_handle
from resolver.core.permissions import Identity, Perm
from resolver.core.secrets import Seal
from resolver.core.templates import SHARED, parse_template, reference_value
from resolver.core.values import StoredValue, parse_values
from resolver.services.batches import OK, Batches, ItemResult
from resolver.services.enterprises import enterprise_prefix_handle_values
from resolver.services.registry import Registry
from resolver.services.seckeys import SecretKeys
from resolver.store.handles import HandleStore
from resolver.store.rows import TemplateRow
from resolver.store.tx import Tx
from tests.fakestore import FakeStore, FakeTx
from tests.helpers import NODE_PREFIX, url_value

LIMITS = Limits()
NODE_ADMIN = Identity(300, "0.na/88.123", "0.NA/88.123")


def prefix_admin(prefix: str) -> Identity:
    """The Handle identity `300:0.NA/<prefix>`."""
    return Identity(300, fold(f"0.NA/{prefix}"), f"0.NA/{prefix}")


def enterprise_user(enterprise_id: int, username: str) -> Identity:
    """An enterprise API user, as resolver/services/accounts.py makes its identity."""
    return Identity(
        0, f"user:{enterprise_id}", username, actor=f"user:{username}", enterprise_id=enterprise_id
    )


def admin_value(index: int, handle: str, admin_index: int, bits: str) -> dict[str, Any]:
    return {
        "index": index,
        "type": "HS_ADMIN",
        "data": {"format": "admin", "value": {"handle": handle, "index": admin_index, "permissions": bits}},
    }


def bits_of(perm: Perm) -> str:
    return format(int(perm), "012b")


def stored(raw: list[dict[str, Any]]) -> list[StoredValue]:
    """Values as the services store them (parsed, with their defaults)."""
    return parse_values(raw, LIMITS, datetime.now(UTC))


@dataclass
class Node:
    """The services of one node over a fake store."""

    store: FakeStore
    registry: Registry
    batches: Batches


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    store = FakeStore()
    lookup = Lookup(ResolutionCache(CacheSettings()), store.fetch_many, max_batches=1)
    registry = Registry(Config(node_prefix=NODE_PREFIX), store, lookup, SecretKeys(Seal(os.urandom(32))))  # type: ignore[arg-type]
    yield Node(store, registry, Batches(registry))
    await lookup.close()


def name(text: str) -> HandleName:
    return parse_handle(text, LIMITS)


async def refused(call: Awaitable[object]) -> HandleError | None:
    """The error a Handle API write raised (None: it was made)."""
    try:
        await call
    except HandleError as exc:
        return exc
    return None


def batch_ok(results: list[ItemResult]) -> bool:
    return all(r.code == OK for r in results)


def item(handle: str, *values: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {"handle": handle, "value": list(values)}
    if version is not None:
        raw["templateVersion"] = version
    return raw


# -- one permission bit at a time ---------------------------------------------------------------
# Mirrors tests/security/test_privilege.py::test_every_permission_bit_over_every_write_path: a
# prefix administrator holding exactly one bit on its (unallocated) prefix's record makes exactly
# the changes that need that bit; prefix records only the node administrator changes.

HANDLE_OPS: dict[str, Perm] = {
    "create": Perm.ADD_HANDLE,
    "delete": Perm.DELETE_HANDLE,
    "add-value": Perm.ADD_VALUE,
    "modify-value": Perm.MODIFY_VALUE,
    "remove-value": Perm.REMOVE_VALUE,
    "add-admin": Perm.ADD_ADMIN,
    "modify-admin": Perm.MODIFY_ADMIN,
    "remove-admin": Perm.REMOVE_ADMIN,
    "create-sub-prefix": Perm.ADD_PREFIX,
    "delete-own-prefix-record": Perm.DELETE_PREFIX,
    "enterprise:create": Perm.ADD_HANDLE,
    "enterprise:batchCreate": Perm.ADD_HANDLE,
    "enterprise:update": Perm.MODIFY_VALUE,
    "enterprise:batchUpdate-add": Perm.ADD_VALUE,
    "enterprise:delete": Perm.DELETE_HANDLE,
    "enterprise:batchDelete": Perm.DELETE_HANDLE,
}
PREFIX_RECORD_OPS = {"create-sub-prefix", "delete-own-prefix-record"}
CREATES = {"create", "enterprise:create", "enterprise:batchCreate"}
BASE = [
    url_value(1, "https://a"),
    {"index": 2, "type": "EMAIL", "data": "qa@example.com"},
    admin_value(100, "0.NA/88.123", 300, "111111111111"),
]


async def run_op(node: Node, op: str, prefix: str, target: str, who: Identity) -> bool:
    """Make the write `op` as `who`; True when it was made."""
    reg, batches = node.registry, node.batches
    if op.startswith("enterprise:"):
        kind = op.partition(":")[2]
        if kind in ("create", "batchCreate"):
            results = await batches.create(
                who, batches.parse_items([item(target, url_value(1, "https://e"))])
            )
        elif kind == "update":
            results = await batches.update(
                who, batches.parse_items([item(target, url_value(1, "https://e"))])
            )
        elif kind == "batchUpdate-add":
            results = await batches.update(
                who, batches.parse_items([item(target, url_value(7, "https://e7"))])
            )
        else:
            results = await batches.delete(who, [target])
        return batch_ok(results)
    calls = {
        "create": lambda: reg.create_or_replace(
            name(target), [url_value(1, "https://new")], who, overwrite=False
        ),
        "delete": lambda: reg.delete_handle(name(target), who),
        "add-value": lambda: reg.put_values(
            name(target), [url_value(3, "https://added")], frozenset({3}), who, overwrite=False
        ),
        "modify-value": lambda: reg.put_values(
            name(target), [url_value(1, "https://changed")], frozenset({1}), who, overwrite=True
        ),
        "remove-value": lambda: reg.delete_values(name(target), frozenset({2}), who),
        "add-admin": lambda: reg.put_values(
            name(target),
            [admin_value(101, f"0.NA/{prefix}", 300, bits_of(Perm.ADD_ADMIN))],
            frozenset({101}),
            who,
            overwrite=False,
        ),
        "modify-admin": lambda: reg.put_values(
            name(target),
            [admin_value(100, "0.NA/88.123", 300, "000000000000")],
            frozenset({100}),
            who,
            overwrite=True,
        ),
        "remove-admin": lambda: reg.delete_values(name(target), frozenset({100}), who),
        "create-sub-prefix": lambda: reg.create_or_replace(
            name(f"0.NA/{prefix}.9"), [url_value(1, "https://p")], who, overwrite=False
        ),
        "delete-own-prefix-record": lambda: reg.delete_handle(name(f"0.NA/{prefix}"), who),
    }
    error = await refused(calls[op]())
    assert error is None or error.rc == RC.INSUFFICIENT_PERMISSIONS, (op, error)
    return error is None


@pytest.mark.parametrize("perm", list(Perm), ids=lambda p: p.name)
@pytest.mark.parametrize("op", list(HANDLE_OPS))
async def test_every_permission_bit_over_every_write_path(node: Node, perm: Perm, op: str):
    prefix = "88.123.60"
    record = f"0.NA/{prefix}"
    node.store.put(record, stored([admin_value(100, record, 300, bits_of(perm))]))
    target = f"{prefix}/T"
    if op not in CREATES:
        node.store.put(target, stored(BASE))
    watched = f"{record}.9" if op == "create-sub-prefix" else record if op in PREFIX_RECORD_OPS else target
    before = node.store.values(watched)
    made = await run_op(node, op, prefix, target, prefix_admin(prefix))
    assert made == (HANDLE_OPS[op] == perm and op not in PREFIX_RECORD_OPS)
    if made:
        assert [e.actor for e in node.store.audit_log] == [f"300:{record}"]
        assert node.store.notifications == [fold(watched)]
    else:
        assert node.store.values(watched) == before
        assert node.store.audit_log == [] and node.store.notifications == []


# -- tenants, prefix states and prefix records --------------------------------------------------
# Mirrors tests/security/test_privilege.py::test_tenants_states_and_prefix_records_over_every_write_path:
# enterprises 1, 2, 3 own A, B, C (C disabled after it was enabled); `expected` is that test's.

A, B, C = "88.123.1", "88.123.2", "88.123.3"
TARGETS = {
    "own handle": (f"{A}/X", A),
    "other tenant's handle": (f"{B}/X", B),
    "node-level handle": ("88.123/X", None),
    "disabled tenant's handle": (f"{C}/X", C),
    "own prefix record": (f"0.NA/{A}", A),
    "sub-prefix record under own": (f"0.NA/{A}.9", A),
    "other tenant's prefix record": (f"0.NA/{B}", B),
    "disabled prefix record": (f"0.NA/{C}", C),
    "sub-prefix record under disabled": (f"0.NA/{C}.1", C),
    "unallocated prefix record": ("0.NA/88.123.77", None),
}
CALLERS = {
    "node-admin": NODE_ADMIN,
    "a-prefix-admin": prefix_admin(A),
    "a-user": enterprise_user(1, "user-a"),
    "c-prefix-admin (disabled)": prefix_admin(C),
    "c-user (disabled)": enterprise_user(3, "user-c"),
}
OWNERS = {"a-prefix-admin": A, "a-user": A, "c-prefix-admin (disabled)": C, "c-user (disabled)": C}
PATHS = {
    "handle-api:create": "create",
    "handle-api:replace": "change",
    "handle-api:add-value": "change",
    "handle-api:add-admin-all-bits": "escalate",
    "handle-api:delete-value": "change",
    "handle-api:delete": "delete",
    "enterprise:create": "create",
    "enterprise:batchCreate": "create",
    "enterprise:update": "change",
    "enterprise:batchUpdate": "change",
    "enterprise:delete": "delete",
    "enterprise:batchDelete": "delete",
}
TEST_VALUES = [
    {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://a"}, "ttl": 86400},
    {"index": 2, "type": "EMAIL", "data": {"format": "string", "value": "q@a"}, "ttl": 86400},
]


def expected(who: str, target: str, path: str) -> bool:
    handle, under = TARGETS[target]
    kind = PATHS[path]
    if under == C:
        return False
    if handle.startswith("0.NA/"):
        if who != "node-admin":
            return False
        return not (handle == f"0.NA/{under}" and kind in ("create", "delete"))
    if who == "node-admin":
        return True
    if OWNERS.get(who) != under:
        return False
    return kind != "escalate"


def tenants(store: FakeStore, handle: str, present: bool) -> None:
    for enterprise_id, prefix in enumerate((A, B, C), start=1):
        store.allocate(prefix, PrefixState.DISABLED if prefix == C else PrefixState.ENABLED, enterprise_id)
        record = enterprise_prefix_handle_values(prefix, {"format": "scrypt", "value": secrets.DUMMY_HASH})
        store.put(f"0.NA/{prefix}", [*stored(TEST_VALUES), *record])
    # as the integration test's reset: the tenants' prefix records always exist
    if present and fold(handle) not in store.handles:
        store.put(handle, stored(TEST_VALUES))


async def perform(node: Node, path: str, handle: str, who: Identity) -> bool:
    reg, batches = node.registry, node.batches
    api, _, op = path.partition(":")
    if api == "enterprise":
        raw = item(handle, url_value(1, "https://e"))
        if op in ("create", "batchCreate"):
            results = await batches.create(who, batches.parse_items([raw]))
        elif op in ("update", "batchUpdate"):
            results = await batches.update(who, batches.parse_items([raw]))
        else:
            results = await batches.delete(who, [handle])
        return batch_ok(results)
    n = name(handle)
    calls = {
        "create": lambda: reg.create_or_replace(n, [url_value(1, "https://n")], who, overwrite=False),
        "replace": lambda: reg.create_or_replace(n, [url_value(1, "https://r")], who, overwrite=True),
        "add-value": lambda: reg.put_values(
            n, [url_value(5, "https://v")], frozenset({5}), who, overwrite=True
        ),
        "add-admin-all-bits": lambda: reg.put_values(
            n, [admin_value(101, f"0.NA/{A}", 300, "111111111111")], frozenset({101}), who, overwrite=True
        ),
        "delete-value": lambda: reg.delete_values(n, frozenset({2}), who),
        "delete": lambda: reg.delete_handle(n, who),
    }
    existed = node.store.values(handle) is not None
    error = await refused(calls[op]())
    # creating a tenant's prefix record (which always exists) fails before any rule is asked
    allowed = {RC.INSUFFICIENT_PERMISSIONS} | (
        {RC.HANDLE_ALREADY_EXISTS} if op == "create" and existed else set()
    )
    assert error is None or error.rc in allowed, (path, error)
    return error is None


ROWS = [
    (who, target, path)
    for target in TARGETS
    for path in PATHS
    for who in CALLERS
    # enterprise users have no Handle identity: authentication refuses them the Handle API
    if not (path.startswith("handle-api:") and who in ("a-user", "c-user (disabled)"))
]


@pytest.mark.parametrize(("who", "target", "path"), ROWS)
async def test_tenants_states_and_prefix_records_over_every_write_path(node: Node, who, target, path):
    handle, _ = TARGETS[target]
    present = PATHS[path] != "create"
    tenants(node.store, handle, present)
    before = node.store.values(handle)
    made = await perform(node, path, handle, CALLERS[who])
    assert made == expected(who, target, path)
    if not made:
        assert node.store.values(handle) == before
        assert node.store.audit_log == []
    else:
        (entry,) = node.store.audit_log
        assert entry.actor == CALLERS[who].name and entry.handle == fold(handle)
        owner = TARGETS[target][1]
        assert entry.enterprise_id == (None if owner is None else {A: 1, B: 2, C: 3}[owner])


# -- every state of an enterprise prefix --------------------------------------------------------
# Mirrors tests/unit/test_policy.py::test_nothing_is_written_under_a_prefix_that_is_not_enabled and
# the disabled tenant's rows of tests/security/test_privilege.py: only an enabled prefix is written.


@pytest.mark.parametrize("state", list(PrefixState), ids=lambda s: s.name)
@pytest.mark.parametrize("who", ["node-admin", "a-prefix-admin", "a-user"])
async def test_only_an_enabled_prefix_is_written(node: Node, state: PrefixState, who: str):
    node.store.allocate(A, state, 1)
    node.store.put(
        f"0.NA/{A}", enterprise_prefix_handle_values(A, {"format": "scrypt", "value": secrets.DUMMY_HASH})
    )
    identity = CALLERS[who]
    batches = node.batches
    (result,) = await batches.create(
        identity, batches.parse_items([item(f"{A}/S", url_value(1, "https://s"))])
    )
    assert (result.code == OK) == (state == PrefixState.ENABLED), result
    if state != PrefixState.ENABLED:
        assert "未启用" in result.msg
        assert node.store.values(f"{A}/S") is None
    if who != "a-user":
        error = await refused(
            node.registry.create_or_replace(
                name(f"{A}/H"), [url_value(1, "https://h")], identity, overwrite=False
            )
        )
        assert (error is None) == (state == PrefixState.ENABLED)
        if error is not None:
            assert error.rc == RC.INSUFFICIENT_PERMISSIONS and "未启用" in error.message


# -- Handle identities and their HS_ADMIN rights -------------------------------------------------
# Mirrors tests/integration/test_permissions.py: prefix administrators of unallocated prefixes.

ENTERPRISE = "0.NA/88.123.45"
MINE = prefix_admin("88.123.45")
THEIRS = prefix_admin("88.123.99")


def make_prefix(store: FakeStore, record: str, perms: str = "111111111111") -> None:
    store.put(record, stored([admin_value(100, record, 300, perms)]))


@pytest.mark.parametrize(
    ("handle", "made"),
    [("88.123.45/P-1", True), ("88.123.99/P-1", False), ("88.123/P-1", False)],
)
async def test_prefix_admin_creates_under_own_prefix_only(node: Node, handle: str, made: bool):
    """test_permissions.py::test_prefix_admin_creates_under_own_prefix_only"""
    make_prefix(node.store, ENTERPRISE)
    make_prefix(node.store, "0.NA/88.123.99")
    error = await refused(
        node.registry.create_or_replace(name(handle), [url_value(1, "https://a")], MINE, overwrite=False)
    )
    assert (error is None) == made
    assert error is None or error.rc == RC.INSUFFICIENT_PERMISSIONS


OTHER_ADMIN_WRITES = {
    "replace": lambda r, n: r.create_or_replace(n, [url_value(1, "https://evil")], THEIRS, overwrite=True),
    "put index 2": lambda r, n: r.put_values(
        n, [url_value(2, "https://evil")], frozenset({2}), THEIRS, overwrite=True
    ),
    "delete index 1": lambda r, n: r.delete_values(n, frozenset({1}), THEIRS),
    "delete": lambda r, n: r.delete_handle(n, THEIRS),
    "list": lambda r, n: r.list_handles("88.123.45", 0, 10, THEIRS),
}


@pytest.mark.parametrize("attempt", list(OTHER_ADMIN_WRITES))
async def test_other_prefix_admin_cannot_change_or_delete(node: Node, attempt: str):
    """test_permissions.py::test_other_prefix_admin_cannot_change_or_delete"""
    make_prefix(node.store, ENTERPRISE)
    make_prefix(node.store, "0.NA/88.123.99")
    await node.registry.create_or_replace(
        name("88.123.45/P-2"), [url_value(1, "https://a")], MINE, overwrite=True
    )
    error = await refused(OTHER_ADMIN_WRITES[attempt](node.registry, name("88.123.45/P-2")))
    assert error is not None and error.rc == RC.INSUFFICIENT_PERMISSIONS
    assert node.store.values("88.123.45/P-2")[0]["data"]["value"] == "https://a"  # type: ignore[index]


async def test_changing_an_admin_value_needs_modify_admin(node: Node):
    """test_permissions.py::test_changing_an_admin_value_needs_modify_admin (and the prefix record
    is the node operator's in any case)"""
    make_prefix(node.store, ENTERPRISE, perms="011101110011")
    error = await refused(
        node.registry.put_values(
            name(ENTERPRISE),
            [admin_value(100, ENTERPRISE, 300, "111111111111")],
            frozenset({100}),
            MINE,
            overwrite=True,
        )
    )
    assert error is not None and error.rc == RC.INSUFFICIENT_PERMISSIONS


@pytest.mark.parametrize(
    ("write", "made"),
    [("modify index 1", True), ("create G-2", False), ("add index 2", False), ("delete", False)],
)
async def test_handle_level_admin_via_group(node: Node, write: str, made: bool):
    """test_permissions.py::test_handle_level_admin_via_group: an HS_VLIST at index 200 of the
    prefix record makes its members the handle's administrators, with the handle's bits only."""
    group = {
        "index": 200,
        "type": "HS_VLIST",
        "data": {"format": "vlist", "value": [{"handle": ENTERPRISE, "index": 300}]},
    }
    node.store.put(ENTERPRISE, stored([admin_value(100, ENTERPRISE, 300, "000000000000"), group]))
    node.store.put(
        "88.123.45/G-1",
        stored([url_value(1, "https://a"), admin_value(100, ENTERPRISE, 200, "000000010000")]),
    )
    reg, g1 = node.registry, name("88.123.45/G-1")
    calls = {
        "modify index 1": lambda: reg.put_values(
            g1, [url_value(1, "https://b")], frozenset({1}), MINE, overwrite=True
        ),
        "create G-2": lambda: reg.create_or_replace(
            name("88.123.45/G-2"), [url_value(1, "https://a")], MINE, overwrite=True
        ),
        "add index 2": lambda: reg.put_values(
            g1, [url_value(2, "https://c")], frozenset({2}), MINE, overwrite=True
        ),
        "delete": lambda: reg.delete_handle(g1, MINE),
    }
    error = await refused(calls[write]())
    assert (error is None) == made
    assert error is None or error.rc == RC.INSUFFICIENT_PERMISSIONS


@pytest.mark.parametrize(("reader", "indexes"), [(MINE, [1, 2]), (THEIRS, [1]), (None, [1])])
async def test_readers_with_read_permission_see_non_public_values(node: Node, reader, indexes):
    """test_permissions.py::test_readers_with_read_permission_see_non_public_values"""
    make_prefix(node.store, ENTERPRISE)
    make_prefix(node.store, "0.NA/88.123.99")
    note = {"index": 2, "type": "NOTE", "data": "secret note", "permissions": "1100"}
    await node.registry.create_or_replace(
        name("88.123.45/R-1"), [url_value(1, "https://a"), note], NODE_ADMIN, overwrite=True
    )
    record = await node.registry.read(name("88.123.45/R-1"), fresh=True)
    seen = await node.registry.readable_values(name("88.123.45/R-1"), record, reader)
    assert [v["index"] for v in seen] == indexes


# -- template versions ---------------------------------------------------------------------------
# Mirrors tests/integration/test_templates_api.py::test_define_use_extend_and_never_delete: values
# naming a template version must fit the prefix's own version, else the shared one of that version;
# a version found in neither is refused naming it.

BOLT = {
    "version": "bolt-1",
    "industryCodes": ["C3482"],
    "items": [
        {
            "name": "规格",
            "idType": "size",
            "idIndex": 2000,
            "required": True,
            "metadata": {"type": "string", "maxLength": 10},
        },
        {"name": "数量", "idType": "count", "idIndex": 2001, "metadata": {"type": "number"}},
        {"name": "颜色", "idType": "color", "idIndex": 2002, "state": 0},
    ],
}


def template_row(prefix: str, body: dict[str, Any]) -> TemplateRow:
    """A template stored the way resolver/store/templates.py stores it."""
    template = parse_template(body, prefix)
    items = orjson.dumps([i.to_json() for i in template.items]).decode()
    return TemplateRow(template.prefix, template.version, list(template.industry_codes), items)


def size(text: str) -> dict[str, Any]:
    return {"index": 2000, "type": "size", "data": {"format": "string", "value": text}}


def count(text: str) -> dict[str, Any]:
    return {"index": 2001, "type": "count", "data": {"format": "string", "value": text}}


TEMPLATE_ROWS = [
    # (id, the prefix's own template?, shared?, other prefix's?, version named, values, made, words of the message)
    ("own version, values fit", True, False, False, "bolt-1", [size("M8"), count("100")], True, ()),
    (
        "own version, not a number",
        True,
        False,
        False,
        "bolt-1",
        [size("M8"), count("many")],
        False,
        ("数量", "数字"),
    ),
    ("own version, required item missing", True, False, False, "bolt-1", [count("1")], False, ("规格",)),
    (
        "own version, disabled item",
        True,
        False,
        False,
        "bolt-1",
        [size("M8"), {"index": 2002, "type": "color", "data": "red"}],
        False,
        ("已停用",),
    ),
    ("shared version", False, True, False, "bolt-1", [size("M8")], True, ()),
    ("only another prefix has it", False, False, True, "bolt-1", [size("M8")], False, ("bolt-1", "不存在")),
    ("no such version", True, True, False, "nope", [size("M8")], False, ("nope", "不存在")),
]


def store_templates(store: FakeStore, own: bool, shared: bool, other: bool) -> None:
    if own:
        store.put_template(template_row("88.123.1", BOLT))
    if shared:
        store.put_template(template_row(SHARED, BOLT))
    if other:
        store.put_template(template_row("88.123.2", BOLT))


@pytest.mark.parametrize(
    ("own", "shared", "other", "version", "values", "made", "words"),
    [r[1:] for r in TEMPLATE_ROWS],
    ids=[r[0] for r in TEMPLATE_ROWS],
)
async def test_template_versions_over_both_apis(node: Node, own, shared, other, version, values, made, words):
    node.store.allocate(A, PrefixState.ENABLED, 1)
    store_templates(node.store, own, shared, other)
    batches = node.batches
    (result,) = await batches.create(
        enterprise_user(1, "tpl"), batches.parse_items([item(f"{A}/T-1", *values, version=version)])
    )
    assert (result.code == OK) == made, result
    assert all(w in result.msg for w in words), result.msg
    # the Handle API names the version by a value at index 1001, and the same check applies
    error = await refused(
        node.registry.create_or_replace(
            name(f"{A}/T-2"), [*values, reference_value(version)], NODE_ADMIN, overwrite=False
        )
    )
    assert (error is None) == made, error
    # the same error: its English message for the Handle API, its Chinese (zh) as the enterprise API said
    assert error is None or (
        error.rc == RC.INVALID_VALUE
        and "template" in error.message
        and all(w in (error.zh or "") for w in words)
    )
    assert (node.store.values(f"{A}/T-2") is not None) == made


# -- the batch's own rules ------------------------------------------------------------------------
# Mirrors tests/integration/test_enterprise_api.py::test_batch_create_has_per_item_results_and_is_idempotent.


async def test_batch_create_has_per_item_results_and_is_idempotent(node: Node):
    node.store.allocate("88.123.45", PrefixState.ENABLED, 10)
    node.store.allocate("88.123.46", PrefixState.ENABLED, 11)
    acme = enterprise_user(10, "acme")
    batches = node.batches
    one, two = (
        item("88.123.45/B-1", url_value(1, "https://1")),
        item("88.123.45/B-2", url_value(1, "https://2")),
    )
    raw = [
        one,
        two,
        item("88.123.46/B-4", url_value(1, "https://4")),
        item("99.1/B-5", url_value(1, "https://5")),
        one,
    ]
    results = await batches.create(acme, batches.parse_items(raw))
    assert [r.code for r in results] == [OK, OK, -2, -2, -2]
    assert "不属于本企业" in results[2].msg and "不在本节点" in results[3].msg and "重复" in results[4].msg
    assert [e.handle for e in node.store.audit_log] == ["88.123.45/b-1", "88.123.45/b-2"]
    retry = await batches.create(acme, batches.parse_items([one, two]))
    assert [r.code for r in retry] == [OK, OK] and "内容相同" in retry[0].msg
    assert not any(r.created for r in retry) and len(node.store.audit_log) == 2
    changed = await batches.create(
        acme,
        batches.parse_items(
            [
                item("88.123.45/B-1", url_value(1, "https://other")),
                item("88.123.45/B-6", url_value(1, "https://6")),
            ]
        ),
    )
    assert [r.code for r in changed] == [-2, OK] and "内容不同" in changed[0].msg
    assert node.store.values("88.123.45/B-1")[0]["data"]["value"] == "https://1"  # type: ignore[index]


# -- the fake itself ----------------------------------------------------------------------------


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        n: inspect.signature(f)
        for n, f in vars(cls).items()
        if callable(f) and not n.startswith("_") and n not in ("put", "allocate", "put_template", "values")
    }


@pytest.mark.parametrize(
    ("fake", "real"), [(FakeTx, Tx), (FakeStore, HandleStore)], ids=["Tx", "HandleStore"]
)
def test_the_fake_has_the_real_stores_methods_and_parameters(fake: type, real: type):
    """Every method the fake offers exists on the real store with the same parameters (whether the
    two answer alike is tests/integration/test_fake_store_agrees.py)."""
    real_methods = _public(real)
    for method, signature in _public(fake).items():
        assert method in real_methods, method
        assert list(signature.parameters) == list(real_methods[method].parameters), method


# -- nobody grants bits it lacks ------------------------------------------------------------------
# Mirrors tests/unit/test_policy.py::test_other_identities_need_the_bits_and_grant_only_bits_they_hold
# and the add-admin/modify-admin rows of test_privilege.py's permission-bit table, through the
# registry: the bits of an HS_ADMIN value a write adds or alters must all be bits the writer holds.

ENTERPRISE_RIGHTS = Perm(0xFFF) & ~(Perm.ADD_PREFIX | Perm.DELETE_PREFIX)
GRANT_ROWS = [
    # (id, the writer's bits, the HS_ADMIN index written, the bits it grants, made, words of the refusal)
    ("grants one of its bits", ENTERPRISE_RIGHTS, 101, Perm.ADD_HANDLE, True, ""),
    ("grants all of its bits", ENTERPRISE_RIGHTS, 101, ENTERPRISE_RIGHTS, True, ""),
    ("grants add-prefix it lacks", ENTERPRISE_RIGHTS, 101, Perm(0xFFF), False, "may not grant"),
    ("add-admin grants add-admin", Perm.ADD_ADMIN, 101, Perm.ADD_ADMIN, True, ""),
    (
        "add-admin grants read-value too",
        Perm.ADD_ADMIN,
        101,
        Perm.ADD_ADMIN | Perm.READ_VALUE,
        False,
        "may not grant",
    ),
    (
        "no add-admin",
        ENTERPRISE_RIGHTS & ~Perm.ADD_ADMIN,
        101,
        Perm.READ_VALUE,
        False,
        "lacks the permission",
    ),
    ("modify-admin takes bits away", Perm.MODIFY_ADMIN, 100, Perm(0), True, ""),
    ("modify-admin grants all", Perm.MODIFY_ADMIN, 100, Perm(0xFFF), False, "may not grant"),
]


@pytest.mark.parametrize(
    ("have", "index", "grants", "made", "words"), [r[1:] for r in GRANT_ROWS], ids=[r[0] for r in GRANT_ROWS]
)
async def test_nobody_grants_bits_it_lacks(
    node: Node, have: Perm, index: int, grants: Perm, made: bool, words: str
):
    record = "0.NA/88.123.60"
    node.store.put(record, stored([admin_value(100, record, 300, bits_of(have))]))
    node.store.put("88.123.60/T", stored(BASE))
    before = node.store.values("88.123.60/T")
    error = await refused(
        node.registry.put_values(
            name("88.123.60/T"),
            [admin_value(index, record, 300, bits_of(grants))],
            frozenset({index}),
            prefix_admin("88.123.60"),
            overwrite=True,
        )
    )
    assert (error is None) == made, error
    if error is not None:
        assert error.rc == RC.INSUFFICIENT_PERMISSIONS and words in error.message
        assert node.store.values("88.123.60/T") == before


async def test_enterprise_users_write_no_admin_values(node: Node):
    """Owner rights hold no admin bits (test_policy.py::test_enterprise_users_write_their_own_
    identifiers_with_owner_rights_only); the enterprise API refuses HS_ values outright."""
    node.store.allocate(A, PrefixState.ENABLED, 1)
    batches = node.batches
    raw = item(f"{A}/X", admin_value(100, f"0.NA/{A}", 300, "111111111111"))
    (result,) = await batches.create(enterprise_user(1, "user-a"), batches.parse_items([raw]))
    assert result.code != OK and "系统保留类型" in result.msg
    # through the Handle API (were it let in) owner rights lack add-admin
    node.store.put(f"{A}/Y", stored(TEST_VALUES))
    error = await refused(
        node.registry.put_values(
            name(f"{A}/Y"),
            [admin_value(100, f"0.NA/{A}", 300, "000000000001")],
            None,
            enterprise_user(1, "u"),
            overwrite=True,
        )
    )
    assert error is not None and error.rc == RC.INSUFFICIENT_PERMISSIONS and "add-admin" in error.message
