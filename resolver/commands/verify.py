"""`resolver verify HANDLE`: check a record's HS_SIGNATURE as hdllib's trust package does
(HandleRecordTrustVerifier, ChainBuilder.buildChain, ChainVerifier; docs/trust-reference.md
section 5), fetching over the node's HTTP Handle API without credentials, like any client.

Trust roots: the PEM public keys of --trust-root, else the node's own HS_PUBKEY values in
`0.NA/<node prefix>`. Stock hdllib trusts only roots on `0.0/0.0`; the output says so when the
root is the node's. Exit 0 when every publicly readable value is verified, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from resolver.config import Config
from resolver.core import sm
from resolver.core.handles import fold
from resolver.native import protocol, record_trust, signing, trust, trust_keys

Record = Callable[[str], list[dict[str, Any]] | None]


def verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("handle", help="the handle to verify")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the node's HTTP base URL")
    parser.add_argument("--trust-root", default=None, help="a PEM file of trusted root public keys")


def http_records(base: str, timeout: float = 10.0) -> Record:
    def fetch(handle: str) -> list[dict[str, Any]] | None:
        url = f"{base.rstrip('/')}/api/handles/{urllib.parse.quote(handle, safe='/')}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError:
            return None
        values = body.get("values") if isinstance(body, dict) else None
        return values if isinstance(values, list) else None

    return fetch


def node_roots(records: Record, node_prefix: str) -> list[Any]:
    """The node's published keys: its HS_PUBKEY values in `0.NA/<node prefix>` (RSA and SM2)."""
    roots: list[Any] = []
    for value in records(f"0.NA/{node_prefix}") or []:
        if str(value.get("type", "")).upper() == "HS_PUBKEY":
            try:
                key = trust_keys.decode_trust_key(protocol.value_data(value.get("data")))
            except (signing.SignatureError, protocol.EncodingError):
                continue
            if isinstance(key, rsa.RSAPublicKey | sm.SM2PublicKey):
                roots.append(key)
    return roots


def pem_roots(path: str) -> list[Any]:
    """The RSA and SM2 public keys (SubjectPublicKeyInfo PEM blocks) of a file."""
    with open(path, "rb") as file:
        text = file.read()
    roots: list[Any] = []
    for block in text.split(b"-----END PUBLIC KEY-----"):
        if b"-----BEGIN PUBLIC KEY-----" in block:
            pem = block[block.index(b"-----BEGIN PUBLIC KEY-----") :] + b"-----END PUBLIC KEY-----\n"
            try:
                roots.append(sm.SM2PublicKey.from_pem(pem))
                continue
            except sm.SMError:
                pass
            key = serialization.load_pem_public_key(pem)
            if isinstance(key, rsa.RSAPublicKey):
                roots.append(key)
    return roots


def verify_record(
    handle: str, records: Record, roots: Sequence[Any], now: float | None = None
) -> tuple[list[str], bool]:
    """Lines to print and whether the record holds."""
    values = records(handle)
    if values is None:
        return [f"{handle}: not found"], False
    signatures = [v for v in values if str(v.get("type", "")).upper() == "HS_SIGNATURE"]
    if not signatures:
        return [f"{handle}: unsigned (no HS_SIGNATURE value)"], False
    cache: dict[str, list[dict[str, Any]]] = {}

    def fetch(ref: str) -> str | None:
        cert_handle = ref.partition(":")[2] or ref
        if cert_handle not in cache:
            cache[cert_handle] = records(cert_handle) or []
        return record_trust.certificate_lookup(cache)(ref)

    lines, ok = list[str](), True
    for signature in signatures:
        try:
            jws = trust.read_jws(protocol.value_data(signature.get("data")).decode("utf-8"))
            if fold(str(jws.claims.get("sub", ""))) != fold(handle):
                raise trust.TrustError(f"it signs {str(jws.claims.get('sub'))[:80]!r}, not this handle")
            links = trust.verify_chain(jws, handle, fetch, roots, now)
        except (trust.TrustError, UnicodeDecodeError) as exc:
            lines.append(f"signature {signature.get('index')}: chain fails: {exc}")
            ok = False
            continue
        lines.append(f"signature {signature.get('index')}: chain {' -> '.join(links)}")
        if not links[-1].partition(":")[2].upper().startswith("0.0/0.0"):
            lines.append(
                f"  note: the root {links[-1]} is this node's key, trusted here as a configured root; "
                "stock hdllib (ChainVerifier) trusts only roots on 0.0/0.0"
            )
        verdict = trust.check_values(jws.claims, record_trust.encoded_answer(values))
        for label, indexes in (
            ("verified", verdict.verified),
            ("bad digest", verdict.bad_digest),
            ("unsigned", verdict.unsigned),
            ("missing (signed, not in this answer)", verdict.missing),
        ):
            lines.extend(f"  index {i}: {label}" for i in indexes)
        # the whole record was read: a signed value that is not there was removed, not filtered
        ok = ok and verdict.holds and not verdict.missing
    return lines, ok


def verify(args: argparse.Namespace, config: Config) -> int:
    records = http_records(args.url)
    roots = pem_roots(args.trust_root) if args.trust_root else node_roots(records, config.node_prefix)
    if not roots:
        print("no trust root: give --trust-root or a node that publishes its HS_PUBKEY values")
        return 2
    lines, ok = verify_record(args.handle, records, roots, time.time())
    print("\n".join(lines))
    return 0 if ok else 1
