"""Privilege: one table over every write path of both APIs and the importer.

The expected outcome of each row is computed here from the rules as documented (README,
`resolver/core/policy.py`), not read back from the code:
- an identity needs the HS_ADMIN permission bits a change needs (the reference server's
  `net/handle/server/HandleServer.java` checks the same bits per operation: add-handle to create,
  delete-handle to delete, add/modify/remove-value and add/modify/remove-admin per value);
- it may not grant bits it does not hold;
- prefix records (`0.NA/...`) are changed by the node administrator only, and the record of an
  allocated enterprise prefix is created and removed by the operator API only;
- nothing under a prefix that is not enabled is written, its prefix record included;
- an enterprise user writes its own enterprise's identifiers and nothing else.

Every refused write is checked to have left the database untouched.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from resolver.bulk.importer import Importer
from resolver.core.permissions import Perm
from resolver.http.keys import LOOKUP
from tests.enterprise_helpers import admit, bearer, user_token
from tests.helpers import admin_json, basic, no_rate_limits, serving, url_value

pytestmark = pytest.mark.integration

NO_LIMITS = no_rate_limits()


@pytest.fixture
def unlimited(config):
    return replace(config, rate=NO_LIMITS)


def admin_value(index: int, handle: str, admin_index: int, bits: str) -> dict[str, Any]:
    return {
        "index": index,
        "type": "HS_ADMIN",
        "data": {"format": "admin", "value": {"handle": handle, "index": admin_index, "permissions": bits}},
    }


def bits_of(perm: Perm) -> str:
    return format(int(perm), "012b")


async def snapshot(client, handle: str) -> Any:
    resp = await client.get(f"/api/handles/{handle}", headers=basic())
    return resp.status, (await resp.json()).get("values")


# -- one permission at a time --------------------------------------------------------------------

# Handle API operations on an existing handle (values: URL at 1, EMAIL at 2, an HS_ADMIN at 100
# naming the node administrator) and what each needs.
HANDLE_OPS: dict[str, Perm] = {
    "create": Perm.ADD_HANDLE,
    "delete": Perm.DELETE_HANDLE,
    "add-value": Perm.ADD_VALUE,
    "modify-value": Perm.MODIFY_VALUE,
    "remove-value": Perm.REMOVE_VALUE,
    "add-admin": Perm.ADD_ADMIN,
    "modify-admin": Perm.MODIFY_ADMIN,
    "remove-admin": Perm.REMOVE_ADMIN,
    "create-sub-prefix": Perm.ADD_PREFIX,  # refused to all but the node administrator
    "delete-own-prefix-record": Perm.DELETE_PREFIX,  # likewise
    "enterprise:create": Perm.ADD_HANDLE,
    "enterprise:batchCreate": Perm.ADD_HANDLE,
    "enterprise:update": Perm.MODIFY_VALUE,
    "enterprise:batchUpdate-add": Perm.ADD_VALUE,
    "enterprise:delete": Perm.DELETE_HANDLE,
    "enterprise:batchDelete": Perm.DELETE_HANDLE,
}
PREFIX_RECORD_OPS = {"create-sub-prefix", "delete-own-prefix-record"}


async def run_op(client, op: str, prefix: str, target: str, headers: dict[str, str]) -> tuple[int, Any]:
    """Perform `op`; returns (HTTP status, body)."""
    path = f"/api/handles/{target}"
    json_headers = {**headers, "Content-Type": "application/json"}
    node_admin = "0.NA/88.123"
    if op == "create":
        resp = await client.put(
            path, params={"overwrite": "false"}, json=[url_value(1, "https://new")], headers=json_headers
        )
    elif op == "delete":
        resp = await client.delete(path, headers=headers)
    elif op == "add-value":
        resp = await client.put(
            path,
            params={"index": "3", "overwrite": "false"},
            json=[url_value(3, "https://added")],
            headers=json_headers,
        )
    elif op == "modify-value":
        resp = await client.put(
            path, params={"index": "1"}, json=[url_value(1, "https://changed")], headers=json_headers
        )
    elif op == "remove-value":
        resp = await client.delete(path, params={"index": "2"}, headers=headers)
    elif op == "add-admin":
        # grants exactly the bit the caller holds: allowed when that bit is add-admin
        value = admin_value(101, f"0.NA/{prefix}", 300, bits_of(Perm.ADD_ADMIN))
        resp = await client.put(
            path, params={"index": "101", "overwrite": "false"}, json=[value], headers=json_headers
        )
    elif op == "modify-admin":
        value = admin_value(100, node_admin, 300, "000000000000")
        resp = await client.put(path, params={"index": "100"}, json=[value], headers=json_headers)
    elif op == "remove-admin":
        resp = await client.delete(path, params={"index": "100"}, headers=headers)
    elif op == "create-sub-prefix":
        resp = await client.put(
            f"/api/handles/0.NA/{prefix}.9",
            params={"overwrite": "false"},
            json=[url_value(1, "https://p")],
            headers=json_headers,
        )
    elif op == "delete-own-prefix-record":
        resp = await client.delete(f"/api/handles/0.NA/{prefix}", headers=headers)
    else:
        kind = op.partition(":")[2]
        item = {"handle": target, "value": [url_value(1, "https://e")]}
        if kind == "create":
            resp = await client.post("/identityv2/data", json=item, headers=headers)
        elif kind == "batchCreate":
            resp = await client.post("/identityv2/data/batchCreate", json=[item], headers=headers)
        elif kind == "update":
            resp = await client.put("/identityv2/data", json=item, headers=headers)
        elif kind == "batchUpdate-add":
            item = {"handle": target, "value": [url_value(7, "https://e7")]}
            resp = await client.put("/identityv2/data/batchUpdate", json=[item], headers=headers)
        elif kind == "delete":
            resp = await client.request(
                "DELETE", "/identityv2/data", json={"handle": target}, headers=headers
            )
        else:
            resp = await client.request(
                "DELETE", "/identityv2/data/batchDelete", json=[target], headers=headers
            )
    return resp.status, await resp.json()


def succeeded(op: str, status: int, body: Any) -> bool:
    if op.startswith("enterprise:"):
        if body.get("status") != 1:
            return False
        data = body.get("data")
        return not isinstance(data, list) or all(r["code"] == 1 for r in data)
    return status in (200, 201)


async def test_every_permission_bit_over_every_write_path(unlimited):
    """An identity holding exactly one permission bit can make exactly the changes that need it."""
    async with serving(unlimited) as client:
        rows = []
        for bit_number, perm in enumerate(Perm):
            prefix = f"88.123.{60 + bit_number}"
            record = f"0.NA/{prefix}"
            values = [
                admin_value(100, record, 300, bits_of(perm)),
                {"index": 300, "type": "HS_SECKEY", "data": f"secret-{bit_number}"},
            ]
            resp = await client.put(f"/api/handles/{record}", json={"values": values}, headers=admin_json())
            assert resp.status in (200, 201), await resp.text()
            who = basic(f"300:{record}", f"secret-{bit_number}")
            for number, (op, needs) in enumerate(HANDLE_OPS.items()):
                target = f"{prefix}/T{number}"
                if op not in ("create", "enterprise:create", "enterprise:batchCreate"):
                    base = [
                        url_value(1, "https://a"),
                        {"index": 2, "type": "EMAIL", "data": "qa@example.com"},
                        admin_value(100, "0.NA/88.123", 300, "111111111111"),
                    ]
                    resp = await client.put(f"/api/handles/{target}", json=base, headers=admin_json())
                    assert resp.status in (200, 201), await resp.text()
                watched = (
                    f"0.NA/{prefix}.9"
                    if op == "create-sub-prefix"
                    else record
                    if op in PREFIX_RECORD_OPS
                    else target
                )
                before = await snapshot(client, watched)
                status, body = await run_op(client, op, prefix, target, who)
                expected = needs == perm and op not in PREFIX_RECORD_OPS
                outcome = succeeded(op, status, body)
                rows.append((perm.name, op, expected, outcome, status, body))
                if not outcome:
                    assert await snapshot(client, watched) == before, (perm.name, op, body)
        wrong = [r for r in rows if r[2] != r[3]]
        assert not wrong, "\n".join(map(str, wrong))
        assert len(rows) == 12 * len(HANDLE_OPS)


# -- tenants, states and prefix records ------------------------------------------------------------


@dataclass
class World:
    a_secret: str
    a_token: str
    c_secret: str
    c_token: str


A, B, C = "88.123.1", "88.123.2", "88.123.3"  # C is disabled after it was enabled


async def make_world(client) -> World:
    a_id, a_secret = await admit(client, A, 1)
    b_id, _ = await admit(client, B, 2)
    c_id, c_secret = await admit(client, C, 3)
    a_token = await user_token(client, a_id, "user-a")
    await user_token(client, b_id, "user-b")
    c_token = await user_token(client, c_id, "user-c")
    for prefix in (A, B, C, "88.123"):
        resp = await client.put(
            f"/api/handles/{prefix}/EXISTING", json=[url_value(1, "https://a")], headers=admin_json()
        )
        assert resp.status in (200, 201), await resp.text()
    resp = await client.put(f"/admin/prefixes/{C}/state", json={"state": 0}, headers=basic())
    assert (await resp.json())["status"] == 1
    return World(a_secret, a_token, c_secret, c_token)


# (name, how it writes): Handle API writes with Basic identities, enterprise API with tokens too.
def callers(world: World) -> dict[str, dict[str, str]]:
    return {
        "anonymous": {},
        "node-admin": basic(),
        "a-prefix-admin": basic(f"300:0.NA/{A}", world.a_secret),
        "a-user-token": bearer(world.a_token),
        "a-user-basic": basic("user-a", "password-123"),
        "c-prefix-admin (disabled)": basic(f"300:0.NA/{C}", world.c_secret),
        "c-user-token (disabled)": bearer(world.c_token),
    }


# Each target: (handle, is a prefix record, the enterprise prefix it falls under or None).
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
OWNERS = {
    "a-prefix-admin": A,
    "a-user-token": A,
    "a-user-basic": A,
    "c-prefix-admin (disabled)": C,
    "c-user-token (disabled)": C,
}

# Writes that create a handle (target absent), change it (target present) or delete it.
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


def expected(who: str, target: str, path: str) -> bool:
    handle, under = TARGETS[target]
    kind = PATHS[path]
    if who == "anonymous" or under == C:
        return False
    is_prefix_record = handle.startswith("0.NA/")
    if is_prefix_record:
        if who != "node-admin":
            return False
        allocated_own = handle == f"0.NA/{under}"
        return not (allocated_own and kind in ("create", "delete"))
    if who == "node-admin":
        return True
    if path.startswith("handle-api:") and who in ("a-user-token", "a-user-basic"):
        return False  # enterprise users have no Handle identity
    if OWNERS.get(who) != under:
        return False
    return kind != "escalate"  # the prefix admin lacks add-prefix/delete-prefix; users lack admin rights


async def perform(client, path: str, handle: str, headers: dict[str, str]) -> tuple[int, Any]:
    api, _, op = path.partition(":")
    json_headers = {**headers, "Content-Type": "application/json"}
    url = f"/api/handles/{handle}"
    if api == "handle-api":
        if op == "create":
            resp = await client.put(
                url, params={"overwrite": "false"}, json=[url_value(1, "https://n")], headers=json_headers
            )
        elif op == "replace":
            resp = await client.put(url, json=[url_value(1, "https://r")], headers=json_headers)
        elif op == "add-value":
            resp = await client.put(
                url, params={"index": "5"}, json=[url_value(5, "https://v")], headers=json_headers
            )
        elif op == "add-admin-all-bits":
            value = admin_value(101, f"0.NA/{A}", 300, "111111111111")
            resp = await client.put(url, params={"index": "101"}, json=[value], headers=json_headers)
        elif op == "delete-value":
            resp = await client.delete(url, params={"index": "2"}, headers=headers)
        else:
            resp = await client.delete(url, headers=headers)
    else:
        item = {"handle": handle, "value": [url_value(1, "https://e")]}
        if op == "create":
            resp = await client.post("/identityv2/data", json=item, headers=headers)
        elif op == "batchCreate":
            resp = await client.post("/identityv2/data/batchCreate", json=[item], headers=headers)
        elif op == "update":
            resp = await client.put("/identityv2/data", json=item, headers=headers)
        elif op == "batchUpdate":
            resp = await client.put("/identityv2/data/batchUpdate", json=[item], headers=headers)
        elif op == "delete":
            resp = await client.request(
                "DELETE", "/identityv2/data", json={"handle": handle}, headers=headers
            )
        else:
            resp = await client.request(
                "DELETE", "/identityv2/data/batchDelete", json=[handle], headers=headers
            )
    return resp.status, await resp.json()


TEST_VALUES = [
    {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://a"}, "ttl": 86400},
    {"index": 2, "type": "EMAIL", "data": {"format": "string", "value": "q@a"}, "ttl": 86400},
]


class Targets:
    """Puts each target into the state a row starts from, behind every API's back (so that
    targets under the disabled prefix can be set up too), and forgets the node's cached copy."""

    def __init__(self, client, database: asyncpg.Connection) -> None:
        self.client = client
        self.database = database
        self.originals: dict[str, str] = {}

    async def remember_prefix_records(self) -> None:
        for prefix in (A, B, C):
            key = f"0.na/{prefix}"
            self.originals[key] = await self.database.fetchval(
                "select vals::text from handles where key = $1", key
            )

    async def reset(self, handle: str, present: bool) -> None:
        key = handle.lower()
        await self.database.execute("delete from handles where key = $1", key)
        if key in self.originals:
            values = [*TEST_VALUES, *orjson.loads(self.originals[key])]
        elif present:
            values = TEST_VALUES
        else:
            values = None
        if values is not None:
            await self.database.execute(
                "insert into handles (key, handle, prefix, vals) values ($1, $2, $3, $4::json)",
                key,
                handle,
                handle.partition("/")[0].lower(),
                orjson.dumps(values).decode(),
            )
        self.client.server.app[LOOKUP].invalidate([key])

    async def values(self, handle: str) -> str | None:
        return await self.database.fetchval("select vals::text from handles where key = $1", handle.lower())


async def test_tenants_states_and_prefix_records_over_every_write_path(unlimited):
    async with serving(unlimited) as client:
        world = await make_world(client)
        database = await asyncpg.connect(unlimited.dsn)
        try:
            targets = Targets(client, database)
            await targets.remember_prefix_records()
            rows = []
            for target, (handle, _) in TARGETS.items():
                for path, kind in PATHS.items():
                    for who, headers in callers(world).items():
                        await targets.reset(handle, present=kind != "create")
                        before = await targets.values(handle)
                        status, body = await perform(client, path, handle, headers)
                        outcome = succeeded(path, status, body)
                        rows.append((who, target, path, expected(who, target, path), outcome, status, body))
                        if not outcome:
                            assert await targets.values(handle) == before, (who, target, path, body)
                    await targets.reset(handle, present=True)
            wrong = [r for r in rows if r[3] != r[4]]
            assert not wrong, "\n".join(map(str, wrong))
            assert len(rows) == len(TARGETS) * len(PATHS) * 7
        finally:
            await database.close()


async def test_the_importer_applies_the_same_rules(unlimited, tmp_path: Path):
    """The importer writes as the node operator: the node administrator's rows of the table."""
    async with serving(unlimited) as client:
        await make_world(client)
    source = tmp_path / "rows.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["handle", "1:URL"])
    for handle, _ in TARGETS.values():
        writer.writerow([handle, "https://imported"])
    source.write_text(buffer.getvalue(), encoding="utf-8")
    conn = await asyncpg.connect(unlimited.dsn)
    try:
        await Importer(unlimited, conn, actor="import:test").run(source)
        imported = {
            r["key"] for r in await conn.fetch("select key from handles where vals::text like '%imported%'")
        }
    finally:
        await conn.close()
    for target, (handle, _) in TARGETS.items():
        is_record = handle.startswith("0.NA/")
        # the node administrator creates every identifier but those under a disabled prefix;
        # an import holds identifiers only, never prefix records
        want = not is_record and expected("node-admin", target, "handle-api:create")
        assert (handle.lower() in imported) == want, target
    report = (tmp_path / "rows.csv.rejected.csv").read_text(encoding="utf-8")
    assert f"{C}/X" in report and "未启用" in report
    assert "0.NA/88.123.77" in report


async def test_a_disabled_prefix_cannot_remove_its_record_and_the_operator_still_rotates(unlimited):
    """The attack of the issue, in order: a disabled prefix added values and an HS_ADMIN to its own
    record, created a sub-prefix and deleted its record, after which rotation failed."""
    async with serving(unlimited) as client:
        world = await make_world(client)
        mine = {**basic(f"300:0.NA/{C}", world.c_secret), "Content-Type": "application/json"}
        attempts = [
            client.put(
                f"/api/handles/0.NA/{C}",
                params={"index": "5"},
                json=[url_value(5, "https://x")],
                headers=mine,
            ),
            client.put(
                f"/api/handles/0.NA/{C}",
                params={"index": "101"},
                json=[admin_value(101, f"0.NA/{C}", 300, "111111111111")],
                headers=mine,
            ),
            client.put(f"/api/handles/0.NA/{C}.1", json=[url_value(1, "https://x")], headers=mine),
            client.delete(f"/api/handles/0.NA/{C}", headers=mine),
            client.delete(f"/api/handles/0.NA/{C}", headers=basic()),  # the operator's, via the Handle API
        ]
        for attempt in attempts:
            resp = await attempt
            assert resp.status == 403, await resp.text()
            assert (await resp.json())["responseCode"] == 401
        rotated = await (
            await client.post(f"/admin/prefixes/{C}/credentials", json={}, headers=basic())
        ).json()
        assert rotated["status"] == 1, rotated
        assert (await client.get(f"/api/handles/0.NA/{C}.1")).status == 404


async def test_the_importer_takes_no_secret_keys(unlimited, tmp_path: Path):
    """A secret imported as written would be stored in clear (or as a hash with parameters the
    node did not choose); the Handle API hashes secrets, the importer refuses them."""
    async with serving(unlimited):
        pass
    rows = tmp_path / "rows.jsonl"
    secret = {"index": 300, "type": "HS_SECKEY", "data": {"format": "string", "value": "in-clear"}}
    plain = {"index": 1, "type": "URL", "data": "https://a"}
    rows.write_text(
        orjson.dumps({"handle": "88.123/SECRET", "value": [plain, secret]}).decode()
        + "\n"
        + orjson.dumps({"handle": "88.123/PLAIN", "value": [plain]}).decode()
        + "\n",
        encoding="utf-8",
    )
    conn = await asyncpg.connect(unlimited.dsn)
    try:
        await Importer(unlimited, conn, actor="import:test").run(rows)
        stored = {r["key"] for r in await conn.fetch("select key from handles where prefix = '88.123'")}
        assert "88.123/plain" in stored and "88.123/secret" not in stored
        assert "in-clear" not in str(await conn.fetch("select vals::text from handles"))
        table = tmp_path / "rows.csv"
        table.write_text("handle,1:URL,300:HS_SECKEY\n88.123/S2,https://a,in-clear\n", encoding="utf-8")
        with pytest.raises(ValueError, match="HS_SECKEY"):
            await Importer(unlimited, conn, actor="import:test").run(table)
        assert await conn.fetchval("select count(*) from handles where key = '88.123/s2'") == 0
    finally:
        await conn.close()
    assert "HS_SECKEY" in (tmp_path / "rows.jsonl.rejected.jsonl").read_text(encoding="utf-8")
