"""The writes of signed prefixes (resolver/services/record_signing.py) as the Registry's write
paths see them: the values a caller's rights and templates are checked against (without the
node's HS_SIGNATURE), the values stored (signed), and the walk that signs a prefix's records when
its signing is turned on (or drops the node's signatures when it is turned off)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from resolver.config import Limits
from resolver.core.errors import RC, HandleError
from resolver.core.handles import HandleName, fold, parse_handle
from resolver.core.values import StoredValue
from resolver.native import protocol, trust
from resolver.services.record_signing import PUBKEY_BASE, SIGNATURE_INDEX, refuse_index_400
from resolver.store.rows import PrefixInfo
from resolver.store.tx import Tx

if TYPE_CHECKING:
    from resolver.services.registry import Registry


def own_values(
    registry: Registry,
    owner: PrefixInfo | None,
    name: HandleName,
    values: list[StoredValue],
    *,
    supplied: bool,
) -> list[StoredValue]:
    """`values` without the node's HS_SIGNATUREs: what rights, templates and comparisons see. In a
    signed prefix the node owns index 400 (a caller's HS_SIGNATURE there, e.g. echoed from a read,
    is replaced; a value of another type there is refused when `supplied`, and kept otherwise, so
    that `finish_many` refuses the write rather than drop it). Everywhere, a signature a node key
    made for the prefix (issuer `30N:0.NA/<prefix>`) at any other index goes: the node's
    signatures are the node's to place, and one made earlier is stale once the record changes. An
    enterprise's own signature (issuer at 500-599) stays."""
    if owner is None or name.is_prefix_handle:
        return values
    if not any(str(v.get("type", "")).upper() == "HS_SIGNATURE" for v in values):
        if owner.signed and supplied:
            refuse_index_400(values, owner.prefix)
        return values
    if owner.signed and supplied:
        refuse_index_400(
            [v for v in values if str(v.get("type", "")).upper() != "HS_SIGNATURE"], owner.prefix
        )
    return [
        v
        for v in values
        if not (
            str(v.get("type", "")).upper() == "HS_SIGNATURE"
            and ((owner.signed and v["index"] == SIGNATURE_INDEX) or node_issued(v, owner.prefix))
        )
    ]


async def finish(
    registry: Registry,
    tx: Tx,
    name: HandleName,
    owner: PrefixInfo | None,
    values: list[StoredValue],
    chains: list[tuple[str, int]],
) -> list[StoredValue]:
    """The values as stored: with the node's HS_SIGNATURE when the prefix is signed (its
    certificates seen to in `tx`; `chains` collects what to remember after the commit)."""
    return (await finish_many(registry, tx, [(name, owner, values)], chains))[0]


async def finish_many(
    registry: Registry,
    tx: Tx,
    records: Sequence[tuple[HandleName, PrefixInfo | None, list[StoredValue]]],
    chains: list[tuple[str, int]],
) -> list[list[StoredValue]]:
    """`finish` for many records: the certificates once per prefix, the signatures off the
    event loop when there are many (RSA-2048 costs about a third of a millisecond each)."""
    signed = [
        n
        for n, (name, owner, _) in enumerate(records)
        if owner is not None and owner.signed and not name.is_prefix_handle
    ]
    if not signed:
        return [values for _, _, values in records]
    signing = registry.signing
    if signing is None:
        owner = records[signed[0]][1]
        assert owner is not None
        raise HandleError(
            RC.SERVER_TOO_BUSY,
            f"the prefix {owner.prefix} is signed and this node has no signing configured",
            zh=f"前缀 {owner.prefix} 已开启可信解析，但本节点未配置签名",
        )
    for n in signed:  # a value of another type at 400 is refused, never dropped
        owner, values = records[n][1], records[n][2]
        assert owner is not None
        refuse_index_400(
            [v for v in values if str(v.get("type", "")).upper() != "HS_SIGNATURE"], owner.prefix
        )
    # every prefix's certificates at once: their handles in key order, then the node's
    prefixes = sorted({owner.prefix for _, owner, _ in (records[n] for n in signed) if owner is not None})
    number, pairs = await signing.chain_in(tx, prefixes)
    chains += pairs

    def sign_all() -> list[list[StoredValue]]:
        out = [values for _, _, values in records]
        for n in signed:
            name, owner, values = records[n]
            assert owner is not None
            out[n] = signing.sign(name.text, owner.prefix, values, number)
        return out

    return sign_all() if len(signed) <= 8 else await asyncio.to_thread(sign_all)


async def resign_page(
    registry: Registry, prefix: str, after: str, size: int = 200
) -> tuple[str | None, int, int]:
    """One page of the records directly under the enterprise prefix `prefix` (folded), in key
    order after `after`: signed anew when the prefix is signed and a record lacks a current
    signature of the signing key, the node's signatures dropped when it is not signed. (the
    last key seen, None past the end; records changed; records refused: in a signed prefix, a
    value of another type at index 400)."""
    chains: list[tuple[str, int]] = []
    async with registry.store.write() as tx:
        keys = await tx.keys_under_prefix(prefix, after, size)
        if not keys:
            return None, 0, 0
        records = await tx.lock_many(keys)
        names = []
        for key in keys:
            if key in records:
                try:
                    names.append(parse_handle(records[key].handle, Limits()))
                except HandleError:
                    continue  # stored before today's rules: left as it is
        owners = await registry.admit(tx, names)
        todo: list[tuple[HandleName, PrefixInfo | None, list[StoredValue]]] = []
        refused = 0
        candidates: list[tuple[HandleName, PrefixInfo, list[StoredValue], list[StoredValue]]] = []
        for name in names:
            owner, values = owners[name.key], records[name.key].values
            if owner is None or fold(owner.prefix) != fold(prefix):
                continue  # governed by a nearer enterprise prefix
            try:
                own = own_values(registry, owner, name, values, supplied=True)
            except HandleError:
                refused += 1
                continue
            candidates.append((name, owner, values, own))
        signing = registry.signing

        def needed() -> list[bool]:  # signature checks: off the event loop (SM2 verifies in ~0.6 ms)
            return [
                (own != values or owner.signed)
                and not (
                    owner.signed
                    and signing is not None
                    and signing.signed_now(values, owner.prefix, name.text)
                )
                for name, owner, values, own in candidates
            ]

        for (name, owner, _values, own), wanted in zip(
            candidates, await asyncio.to_thread(needed), strict=True
        ):
            if wanted:
                todo.append((name, owner, own))
        stored = await finish_many(registry, tx, todo, chains)
        rows = [
            (name.key, v)
            for (name, _, _), v in zip(todo, stored, strict=True)
            if v != records[name.key].values
        ]
        if rows:
            await tx.update_many(rows)
    registry.committed(tx.changed, chains)
    return keys[-1], len(rows), refused


def node_issued(value: StoredValue, prefix: str) -> bool:
    """An HS_SIGNATURE whose issuer is a node key's reference in `0.NA/<prefix>` (index 301-399):
    told by its claims alone, without a signature check, so that a tenant's batch of forged ones
    costs nothing (dropping a forged one loses nothing either)."""
    if str(value.get("type", "")).upper() != "HS_SIGNATURE":
        return False
    try:
        claims = trust.read_jws(protocol.value_data(value["data"]).decode("utf-8")).claims
    except (trust.TrustError, UnicodeDecodeError, protocol.EncodingError, ValueError, TypeError):
        return False
    index, _, handle = str(claims.get("iss", "")).partition(":")
    return (
        handle.lower() == f"0.na/{prefix}".lower()
        and index.isascii()
        and index.isdigit()
        and PUBKEY_BASE < int(index[:4]) < PUBKEY_BASE + 100
    )
