"""Trusted resolution (可信解析) of enterprise prefixes: records signed by the node on the
enterprise's behalf, in the HS_CERT / HS_SIGNATURE form of Handle.Net 8+ that hdllib's trust
package verifies (resolver/native/record_trust.py builds the values, resolver/native/trust.py
checks them as HandleVerifier, ChainBuilder and ChainVerifier do).

The chain a client builds, for the node's key number N (`node-N-...` in the key directory):

    88.123.45/P-1    HS_SIGNATURE at 400, iss `30N:0.NA/88.123.45`, digests of its public values
    0.NA/88.123.45   HS_CERT at 40N: sub `30N:0.NA/88.123.45`, iss `30N:0.NA/88.123`, the node's
                     key, perm handlesUnderThisPrefix 0.NA/88.123.45; HS_PUBKEY at 30N
    0.NA/88.123      HS_CERT at 40N: self-issued root `30N:0.NA/88.123`, perms derivedPrefixes and
                     handlesUnderThisPrefix 0.NA/88.123; HS_PUBKEY at 30N (the trust root)

Indexes follow the key's number, so a rotation adds values beside the old ones and signatures made
with the old key keep verifying; index 300 stays the administrator's HS_SECKEY. Certificates live
two years and are issued again when less than a quarter of that is left.

Only public values are signed (HandleRecordTrustVerifier.valueNeedsSignature), each by its own
digest, so an answer filtered by permissions or by the client's index/type choice still verifies.
A signed prefix owns index 400 of its records: a caller's value there is refused.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from resolver.config import Limits
from resolver.core.errors import RC, HandleError
from resolver.core.handles import fold
from resolver.core.values import StoredValue, parse_values
from resolver.keys import Signers
from resolver.native import protocol, record_trust, trust, trust_keys
from resolver.store.rows import AuditEntry
from resolver.store.tx import Tx

PUBKEY_BASE = 300  # HS_PUBKEY of node key N at 300 + N (300 itself is the admin's HS_SECKEY)
CERT_BASE = PUBKEY_BASE + record_trust.CERT_OFFSET  # HS_CERT of key N at 400 + N
SIGNATURE_INDEX = record_trust.SIGNATURE_INDEX  # 400: the record's HS_SIGNATURE
CERT_LIFETIME = 2 * 365 * 86400.0  # trust.certificate_claims' default
CHECK_SECONDS = 300.0  # how long a worker takes a prefix's certificates as in place before it looks again
RENEW_WITHIN = CERT_LIFETIME / 4
ACTOR = "node"  # the audit actor of values the node writes itself


def key_number(key_id: str) -> int:
    """N of `node-N-xxxx`: the key's place in the key directory, which only grows."""
    try:
        number = int(key_id.split("-")[1])
    except (IndexError, ValueError):
        raise ValueError(f"key id {key_id!r} is not node-N-...") from None
    if not 0 < number < 100:
        raise ValueError(f"key {key_id!r}: at most 99 node keys have trust indexes (300 + N)")
    return number


def _stored(raw: Sequence[dict[str, Any]]) -> list[StoredValue]:
    # built by the node: the limits for client input do not apply
    return parse_values(raw, Limits(), datetime.now(UTC))


def _certifies(value: StoredValue, subject: str, key_octets: bytes) -> bool:
    """An HS_CERT of the node's for `subject` and this key (whatever its times and signature)."""
    if str(value.get("type", "")).upper() != "HS_CERT":
        return False
    try:
        claims = trust.read_jws(protocol.value_data(value["data"]).decode("utf-8")).claims
        key = trust.key_of(claims.get("publicKey"))
    except (trust.TrustError, UnicodeDecodeError, ValueError, TypeError, protocol.EncodingError):
        return True  # unreadable: ours to replace only if it claims nothing else (it cannot)
    return claims.get("sub") == subject and trust_keys.encode_trust_key(key) == key_octets


def _valid_cert(
    value: StoredValue | None, subject: str, issuer: str, key_octets: bytes, signer: Any, now: float
) -> bool:
    """An HS_CERT for `subject` of this key, issued by `issuer` and signed by its key (`signer`),
    with more than RENEW_WITHIN left."""
    if value is None or str(value.get("type", "")).upper() != "HS_CERT":
        return False
    try:
        jws = trust.read_jws(protocol.value_data(value["data"]).decode("utf-8"))
        key = trust.key_of(jws.claims.get("publicKey"))
    except (trust.TrustError, UnicodeDecodeError, ValueError, TypeError, protocol.EncodingError):
        return False
    claims = jws.claims
    return (
        claims.get("sub") == subject
        and claims.get("iss") == issuer
        and trust_keys.encode_trust_key(key) == key_octets
        and float(claims.get("exp", 0) or 0) - now > RENEW_WITHIN
        and jws.verifies_with(signer)
    )


def _occupied(handle: str, index: int) -> HandleError:
    return HandleError(
        RC.VALUE_ALREADY_EXISTS,
        f"index {index} of {handle} holds a value that is not the node's: the node's key needs that index "
        "for trusted resolution; move the value first",
        zh=f"{handle} 的索引 {index} 已有其他标识值，节点密钥的可信解析需要该索引，请先移走该值",
    )


class RecordSigning:
    """Signs the records of signed prefixes with the node key that signs now, and keeps the
    certificates of the chain in `0.NA/<node>` and `0.NA/<prefix>`."""

    def __init__(
        self,
        signers: Signers,
        node_prefix: str,
        invalidate: Callable[[list[str]], None],
        algorithm: str = "rsa",
    ) -> None:
        self.signers = signers
        self.node_prefix = node_prefix
        self.algorithm = algorithm  # the key type that signs records (--record-key)
        self._invalidate = invalidate  # the worker's cache, after the node wrote a trust value
        # (prefix handle key, key number) -> until when this worker takes its certificates as in place
        self._certified: dict[tuple[str, int], float] = {}

    def current(self) -> tuple[int, Any, bytes] | None:
        """(key number, private key, HS_PUBKEY octets) of the key that signs now, if any."""
        current = self.signers.current(algorithm=self.algorithm)
        if current is None:
            return None
        key, private, octets = current
        return key_number(key.id), private, octets

    def issuer(self, prefix: str, number: int) -> str:
        return record_trust.reference(PUBKEY_BASE + number, f"0.NA/{prefix}")

    # -- the chain ------------------------------------------------------------------------------

    def _trust_values(
        self,
        handle: str,
        existing: Sequence[StoredValue],
        number: int,
        private: Any,
        octets: bytes,
        now: float,
    ) -> list[StoredValue] | None:
        """`existing` with key `number`'s HS_PUBKEY and HS_CERT in place (the root for the node's
        handle, a prefix certificate for a prefix's), or None when they already are. A value of
        someone else at those indexes is never replaced (HandleError): an HS_ADMIN naming
        `30N:0.NA/...` would otherwise start to mean the node's key."""
        by_index = {v["index"]: v for v in existing}
        pub_index, cert_index = PUBKEY_BASE + number, CERT_BASE + number
        subject = record_trust.reference(pub_index, handle)
        issuer = record_trust.reference(pub_index, f"0.NA/{self.node_prefix}")
        fresh: list[dict[str, Any]] = []
        current_pub = by_index.get(pub_index)
        if current_pub is None:
            fresh.append(
                {"index": pub_index, "type": "HS_PUBKEY", "data": {"format": "key", "value": _b64(octets)}}
            )
        elif (
            str(current_pub.get("type", "")).upper() != "HS_PUBKEY"
            or protocol.value_data(current_pub["data"]) != octets
        ):
            raise _occupied(handle, pub_index)
        current_cert = by_index.get(cert_index)
        if current_cert is not None and not _certifies(current_cert, subject, octets):
            raise _occupied(handle, cert_index)
        if not _valid_cert(current_cert, subject, issuer, octets, trust_keys.public_of(private), now):
            if handle == f"0.NA/{self.node_prefix}":
                cert = record_trust.root_certificate(self.node_prefix, pub_index, private, now)
            else:
                # derivedPrefixes too: a handle of an undelegated sub-prefix (88.123.45.7/P) is
                # governed, and signed, by the enterprise prefix
                cert = record_trust.prefix_certificate(
                    self.node_prefix,
                    pub_index,
                    private,
                    handle[len("0.NA/") :],
                    pub_index,
                    trust_keys.public_of(private),
                    now,
                    derived=True,
                )
            fresh.append(cert)
        if not fresh:
            return None
        replaced = {v["index"] for v in fresh}
        kept = [v for v in existing if v["index"] not in replaced]
        return sorted([*kept, *_stored(fresh)], key=lambda v: v["index"])

    def _signing(self) -> tuple[int, Any, bytes]:
        current = self.current()
        if current is None:
            raise HandleError(
                RC.SERVER_TOO_BUSY,
                "the node has no signing key loaded: run `resolver keys init`, then restart the node "
                "or send it SIGHUP; records of signed prefixes are not written unsigned",
                zh="节点未加载签名密钥：请运行 resolver keys init，再重启节点或发送 SIGHUP；已开启可信解析的前缀不写入未签名的标识",
            )
        return current

    async def chain_in(
        self, tx: Tx, prefixes: Sequence[str], *, force: bool = False
    ) -> tuple[int, list[tuple[str, int]]]:
        """In `tx`: the signing key's certificates of `prefixes` (in `0.NA/<prefix>`) and its root
        certificate in `0.NA/<node>`, written when missing or near their end; checked again once
        CHECK_SECONDS have passed since this worker last saw them, or when `force`. (the key number,
        the pairs to remember once `tx` committed: `certified`.) The prefixes' handles are locked
        first, in key order, and the node's last: the order of every caller (writes, batches over
        several prefixes, set_signing, enterprise keys, imports), so that none can deadlock another."""
        number, private, octets = self._signing()
        handles = [*sorted({f"0.na/{fold(p)}" for p in prefixes}), f"0.na/{fold(self.node_prefix)}"]
        done: list[tuple[str, int]] = []
        now = time.monotonic()
        for key in handles:
            if not force and self._certified.get((key, number), 0.0) > now:
                continue
            record = await tx.lock(key)
            if record is None:
                raise HandleError(
                    RC.HANDLE_NOT_FOUND,
                    f"{key} does not exist: a prefix is signed once it was enabled",
                    zh=f"{key} 不存在：前缀启用后才能开启可信解析",
                )
            handle = f"0.NA/{key[len('0.na/') :]}"
            updated = self._trust_values(handle, record.values, number, private, octets, time.time())
            if updated is not None:
                await tx.update(key, updated)
                tx.audit(AuditEntry(ACTOR, "trust.certificate", key, None, record.values, updated))
            done.append((key, number))
        return number, done

    def certified(self, pairs: Sequence[tuple[str, int]]) -> None:
        """The certificates `chain_in` saw to are committed: not looked at again for CHECK_SECONDS."""
        until = time.monotonic() + CHECK_SECONDS
        self._certified.update(dict.fromkeys(pairs, until))

    def forget(self, prefix: str) -> None:
        """The certificates of `prefix` were removed (signing turned off): look again next time."""
        key = f"0.na/{fold(prefix)}"
        self._certified = {pair: t for pair, t in self._certified.items() if pair[0] != key}

    @staticmethod
    def without_certificates(values: Sequence[StoredValue]) -> list[StoredValue]:
        """A prefix handle's values without the node's trust values (HS_PUBKEY at 301-399, HS_CERT
        at 401-499): what turning signing off leaves, so that the node's signatures made for the
        prefix stop verifying (a copied one cannot be replayed)."""
        return [
            v
            for v in values
            if not (
                (PUBKEY_BASE < v["index"] < CERT_BASE and str(v.get("type", "")).upper() == "HS_PUBKEY")
                or (CERT_BASE < v["index"] < CERT_BASE + 100 and str(v.get("type", "")).upper() == "HS_CERT")
            )
        ]

    # -- records --------------------------------------------------------------------------------

    def sign(self, handle: str, prefix: str, values: Sequence[StoredValue], number: int) -> list[StoredValue]:
        """`values` with the HS_SIGNATURE of key `number` at 400 in place of any earlier one."""
        private = self.private(number)
        kept = [v for v in values if v["index"] != SIGNATURE_INDEX]
        raw = record_trust.signature_value(handle, kept, self.issuer(prefix, number), private)
        return sorted([*kept, *_stored([raw])], key=lambda v: v["index"])

    def private(self, number: int) -> Any:
        for key, private, _octets in self.signers.entries():
            if key_number(key.id) == number:
                return private
        raise HandleError(
            RC.SERVER_TOO_BUSY,
            "the node's signing key changed meanwhile; retry",
            zh="节点的签名密钥刚刚更换，请重试",
        )

    def signed_now(self, values: Sequence[StoredValue], prefix: str, handle: str) -> bool:
        """The record carries a signature of the key that signs now, over its current values
        (what re-signing skips, so that a re-run picks up where one stopped)."""
        current = self.current()
        signature = next((v for v in values if v["index"] == SIGNATURE_INDEX), None)
        if current is None or signature is None or str(signature.get("type", "")).upper() != "HS_SIGNATURE":
            return False
        try:
            jws = trust.read_jws(protocol.value_data(signature["data"]).decode("utf-8"))
        except (trust.TrustError, UnicodeDecodeError, protocol.EncodingError, ValueError, TypeError):
            return False
        if jws.claims.get("iss") != self.issuer(prefix, current[0]) or jws.claims.get("sub") != handle:
            return False
        if float(jws.claims.get("exp", 0) or 0) - time.time() < RENEW_WITHIN:
            return False
        encoded = record_trust.encoded_answer([v for v in values if v["index"] != SIGNATURE_INDEX])
        verdict = trust.check_values(jws.claims, encoded)
        return jws.verifies_with(trust_keys.public_of(current[1])) and verdict.holds and not verdict.missing


def refuse_index_400(values: Sequence[StoredValue], prefix: str) -> None:
    """A signed prefix's records keep index 400 for the node's HS_SIGNATURE."""
    for value in values:
        if value["index"] == SIGNATURE_INDEX:
            raise HandleError(
                RC.INVALID_VALUE,
                f"index {SIGNATURE_INDEX} holds the node's HS_SIGNATURE in the signed prefix {prefix}",
                zh=f"前缀 {prefix} 已开启可信解析，索引 {SIGNATURE_INDEX} 由节点的 HS_SIGNATURE 占用",
            )


def _b64(octets: bytes) -> str:
    return base64.b64encode(octets).decode("ascii")
