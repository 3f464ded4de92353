"""The node's HS_CERT and HS_SIGNATURE values (issue 17 item 4), built on resolver/native/trust.py.
Pure: keys and values in, handle values out; nothing here reads the database or is wired into a
write path yet.

- `root_certificate`: for a published node key (HS_PUBKEY at `pubkey_index` of `0.NA/<node>`), a
  self-issued HS_CERT (sub = iss = `<pubkey_index>:0.NA/<node>`), perms derivedPrefixes and
  handlesUnderThisPrefix over `0.NA/<node>` (hdllib's Util.isHandleUnderPrefix and isDerivedFrom
  want a `0.NA/` target); stored at `pubkey_index + 100` (400+).
- `prefix_certificate`: the node root certifying a key for an enterprise prefix P
  (sub = `<index>:0.NA/P`, perms handlesUnderThisPrefix `0.NA/P`).
- `signature_value`: the HS_SIGNATURE of a record (index 400) over every value that
  `needs_signature` (HandleRecordTrustVerifier.valueNeedsSignature: publicly readable, not
  HS_SIGNATURE itself).

No `chain` claim is written: ChainBuilder.buildChain then looks in the issuer's handle for the
latest (`iat`) HS_CERT whose `sub` equals the child's `iss`, which `certificate_lookup` does for a
verifier (trust.verify_chain passes it the issuer reference).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from resolver.native import protocol, trust, trust_keys

SIGNATURE_INDEX = 400
CERT_OFFSET = 100  # HS_CERT of the key at HS_PUBKEY index i sits at i + 100


def reference(index: int, handle: str) -> str:
    """ValueReference.toString."""
    return f"{index}:{handle}"


def needs_signature(value: Mapping[str, Any]) -> bool:
    """HandleRecordTrustVerifier.valueNeedsSignature: public read, and not HS_SIGNATURE."""
    perms = str(value.get("permissions", "1110"))
    perms = ("1110"[: max(0, 4 - len(perms))] + perms)[-4:]
    return perms[2] == "1" and str(value.get("type", "")).upper() != "HS_SIGNATURE"


def _cert_value(index: int, jws: str, ttl: int = 86400) -> dict[str, Any]:
    return {"index": index, "type": "HS_CERT", "data": jws, "ttl": ttl, "permissions": "1110"}


def root_certificate(
    node_prefix: str, pubkey_index: int, key: Any, now: float | None = None
) -> dict[str, Any]:
    handle = f"0.NA/{node_prefix}"
    subject = reference(pubkey_index, handle)
    claims = trust.certificate_claims(
        subject,
        subject,
        trust_keys.public_of(key),
        [(handle, "derivedPrefixes"), (handle, "handlesUnderThisPrefix")],
        now,
    )
    return _cert_value(pubkey_index + CERT_OFFSET, trust.sign_jws(claims, key))


def prefix_certificate(
    node_prefix: str,
    root_pubkey_index: int,
    root_key: Any,
    prefix: str,
    pubkey_index: int,
    prefix_key: Any,
    now: float | None = None,
    derived: bool = False,
) -> dict[str, Any]:
    """`derived`: also derivedPrefixes, for a key that signs the handles of undelegated
    sub-prefixes too (the node's own key for a prefix it signs)."""
    perms = [(f"0.NA/{prefix}", "handlesUnderThisPrefix")]
    if derived:
        perms.append((f"0.NA/{prefix}", "derivedPrefixes"))
    claims = trust.certificate_claims(
        reference(pubkey_index, f"0.NA/{prefix}"),
        reference(root_pubkey_index, f"0.NA/{node_prefix}"),
        prefix_key,
        perms,
        now,
    )
    return _cert_value(pubkey_index + CERT_OFFSET, trust.sign_jws(claims, root_key))


def signature_value(
    handle: str,
    values: Iterable[Mapping[str, Any]],
    issuer: str,
    key: Any,
    now: float | None = None,
    index: int = SIGNATURE_INDEX,
) -> dict[str, Any]:
    """The HS_SIGNATURE value replacing any earlier one of the record."""
    encoded = {int(v["index"]): protocol.encode_value(dict(v)) for v in values if needs_signature(v)}
    encoded.pop(index, None)
    jws = trust.sign_jws(trust.signature_claims(handle, encoded, issuer, now), key)
    return {"index": index, "type": "HS_SIGNATURE", "data": jws, "ttl": 86400, "permissions": "1110"}


def with_signature(
    handle: str,
    values: Sequence[Mapping[str, Any]],
    issuer: str,
    key: Any,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """The record's values with its HS_SIGNATURE replaced (any earlier HS_SIGNATURE dropped)."""
    kept = [dict(v) for v in values if str(v.get("type", "")).upper() != "HS_SIGNATURE"]
    return [*kept, signature_value(handle, kept, issuer, key, now)]


def certificate_lookup(records: Mapping[str, Sequence[Mapping[str, Any]]]) -> trust.Fetch:
    """A trust.Fetch over records by handle (ChainBuilder.buildChain): `index:handle` is the HS_CERT
    at that index when it certifies that reference, else the latest (`iat`) HS_CERT in the handle
    whose `sub` is the reference (the lookup of a link without a `chain` claim)."""

    def fetch(ref: str) -> str | None:
        number, _, handle = ref.partition(":")
        if not handle:
            number, handle = "", ref
        best: tuple[int, str] | None = None
        for value in records.get(handle, records.get(handle.upper(), ())):
            if str(value.get("type", "")).upper() != "HS_CERT":
                continue
            try:
                text = _jws_text(value.get("data", ""))
                claims = trust.read_jws(text).claims
            except (trust.TrustError, protocol.EncodingError, UnicodeDecodeError, ValueError, TypeError):
                continue
            if number and str(value.get("index")) == number and claims.get("sub") == ref:
                return text
            if claims.get("sub") == ref:
                iat = int(claims.get("iat", 0) or 0)
                if best is None or iat > best[0]:
                    best = (iat, text)
        return None if best is None else best[1]

    return fetch


def _jws_text(data: Any) -> str:
    """An HS_CERT's JWS, whether the value is as built here (a string) or as stored and answered
    by the Handle API (`{"format": "string", "value": ...}`)."""
    return data if isinstance(data, str) else protocol.value_data(data).decode("utf-8")


def encoded_answer(values: Iterable[Mapping[str, Any]]) -> dict[int, bytes]:
    """What a verifier checks (HandleVerifier.verifyValues): the publicly readable values at hand."""
    return {int(v["index"]): protocol.encode_value(dict(v)) for v in values if needs_signature(v)}
