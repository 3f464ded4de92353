"""An enterprise's own signing key, certified by the node (trusted resolution with the enterprise's
key rather than the node's: resolver/services/record_signing.py covers the node signing on its
behalf). The operator registers the enterprise's public key (RSA or SM2, PEM) for its prefix; the
node publishes it as HS_PUBKEY at an index in 500-599 of `0.NA/<prefix>` and, 100 above, an HS_CERT
issued by the node's root key (`30N:0.NA/<node>`) with the permission handlesUnderThisPrefix over
`0.NA/<prefix>`. The enterprise then signs its records itself (an HS_SIGNATURE whose `iss` is
`<index>:0.NA/<prefix>`) and writes them through any API; verifiers chain them to the node's root.
In a prefix the node signs, the node's signature takes index 400: use one or the other.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

from resolver.config import Limits
from resolver.core import sm
from resolver.core.errors import RC, HandleError
from resolver.core.handles import PREFIX_NA, fold
from resolver.core.permissions import Identity
from resolver.core.values import parse_values
from resolver.native import record_trust
from resolver.native.trust_keys import encode_trust_key
from resolver.services.record_signing import PUBKEY_BASE, RecordSigning
from resolver.store import enterprises as db
from resolver.store.handles import HandleStore
from resolver.store.rows import AuditEntry, Record
from resolver.store.tx import Tx

FIRST_INDEX, LAST_INDEX = 500, 599  # HS_PUBKEY of enterprise keys; their HS_CERT 100 above
MAX_PEM = 8192


def _bad(message: str, zh: str) -> HandleError:
    return HandleError(RC.INVALID_VALUE, message, zh=zh)


def read_public_key(pem: object) -> Any:
    """An RSA (2048 bits or more) or SM2 public key from a SubjectPublicKeyInfo PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if not isinstance(pem, str) or not pem.strip() or len(pem) > MAX_PEM:
        raise _bad(
            "publicKey must be a PEM public key (-----BEGIN PUBLIC KEY-----)",
            "publicKey 应为 PEM 格式的公钥（-----BEGIN PUBLIC KEY-----）",
        )
    try:
        return sm.SM2PublicKey.from_pem(pem)
    except sm.SMError:
        pass
    try:
        key = serialization.load_pem_public_key(pem.encode("utf-8"))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise _bad("publicKey is not a readable PEM public key", "publicKey 不是可读取的 PEM 公钥") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise _bad(
            "publicKey must be RSA of 2048 bits or more, or SM2",
            "publicKey 应为至少 2048 位的 RSA 公钥或 SM2 公钥",
        )
    return key


async def prefix_handle(tx: Tx, prefix: str) -> tuple[db.LockedPrefix, str, Record]:
    """The allocated prefix and its prefix handle, both locked, in that order (the order of
    set_signing and of every chain: resolver/services/record_signing.py)."""
    row = await db.lock_prefix(tx, fold(prefix))
    if row is None:
        raise HandleError(
            RC.HANDLE_NOT_FOUND, f"prefix {prefix} is not allocated", zh=f"前缀 {prefix} 未分配"
        )
    handle_key = f"{PREFIX_NA}/{row.prefix}"
    record = await tx.lock(handle_key)
    if record is None:
        raise _bad(
            f"prefix {row.display} was never enabled: it has no prefix handle",
            f"前缀 {row.display} 尚未启用过，没有前缀标识",
        )
    return row, handle_key, record


async def certify(
    store: HandleStore, signing: RecordSigning | None, prefix: str, body: dict[str, Any], actor: Identity
) -> tuple[dict[str, Any], list[str], list[tuple[str, int]]]:
    """Publish and certify an enterprise key for `prefix`: (the answer, the handles changed, the
    certificate pairs to remember after the commit)."""
    key = read_public_key(body.get("publicKey"))
    index = body.get("index")
    if index is not None and (
        not isinstance(index, int) or isinstance(index, bool) or not FIRST_INDEX <= index <= LAST_INDEX
    ):
        raise _bad(
            f"index must be {FIRST_INDEX} to {LAST_INDEX}", f"index 应在 {FIRST_INDEX} 到 {LAST_INDEX} 之间"
        )
    if signing is None or signing.current() is None:
        raise _bad(
            "the node has no signing key to certify with: run `resolver keys init`, then restart or SIGHUP the node",
            "节点没有可用于签发证书的密钥：请先运行 resolver keys init，再重启节点或发送 SIGHUP",
        )
    async with store.write() as tx:
        row, handle_key, record = await prefix_handle(tx, prefix)
        number, chains = await signing.chain_in(tx, [])  # the node's root: after the prefix's handle
        taken = {v["index"] for v in record.values}
        if index is None:
            index = next((i for i in range(FIRST_INDEX, LAST_INDEX + 1) if i not in taken), None)
            if index is None:
                raise _bad("every key index of the prefix is taken", "该前缀的密钥索引已用完")
        elif index in taken or index + 100 in taken:
            raise HandleError(
                RC.VALUE_ALREADY_EXISTS,
                f"index {index} of {row.display} holds a key already: revoke it first",
                zh=f"前缀 {row.display} 的索引 {index} 已有密钥，请先吊销",
            )
        private = signing.private(number)
        cert = record_trust.prefix_certificate(
            signing.node_prefix, PUBKEY_BASE + number, private, row.prefix, index, key, time.time()
        )
        octets = base64.b64encode(encode_trust_key(key)).decode("ascii")
        published = {"index": index, "type": "HS_PUBKEY", "data": {"format": "key", "value": octets}}
        fresh = parse_values([published, cert], Limits(), datetime.now(UTC))  # the node's own values
        updated = sorted([*record.values, *fresh], key=lambda v: v["index"])
        await tx.update(handle_key, updated)
        issuer = record_trust.reference(index, f"0.NA/{row.display}")
        tx.audit(
            AuditEntry(
                actor.name,
                "trust.certificate.enterprise",
                handle_key,
                row.enterprise_id,
                record.values,
                updated,
                {"key": issuer},
            )
        )
    answer = {
        "prefix": row.display,
        "index": index,
        "certificateIndex": index + 100,
        "issuer": issuer,
        "certifiedBy": record_trust.reference(PUBKEY_BASE + number, f"0.NA/{signing.node_prefix}"),
    }
    return answer, tx.changed, chains


async def revoke(store: HandleStore, prefix: str, index: int, actor: Identity) -> list[str]:
    """Remove an enterprise key and its certificate; the handles changed. Records signed with it
    no longer verify ("no certificate"), which is what revoking means."""
    if not FIRST_INDEX <= index <= LAST_INDEX:
        raise _bad(
            f"index must be {FIRST_INDEX} to {LAST_INDEX}", f"index 应在 {FIRST_INDEX} 到 {LAST_INDEX} 之间"
        )
    async with store.write() as tx:
        row, handle_key, record = await prefix_handle(tx, prefix)
        kept = [v for v in record.values if v["index"] not in (index, index + 100)]
        if len(kept) == len(record.values):
            raise HandleError(
                RC.VALUES_NOT_FOUND, f"no enterprise key at index {index}", zh=f"索引 {index} 处没有企业密钥"
            )
        await tx.update(handle_key, kept)
        tx.audit(
            AuditEntry(
                actor.name, "trust.certificate.revoke", handle_key, row.enterprise_id, record.values, kept
            )
        )
    return tx.changed
