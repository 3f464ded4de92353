"""HS_SIGNATURE and HS_CERT values as hdllib's trust package writes and checks them
(`net/handle/hdllib/trust/`: HandleSigner, HandleVerifier, ChainBuilder, ChainVerifier; the facts
are in docs/trust-reference.md section 5). Pure: values in, JWS text and verdicts out.

- A JWS is compact (`header.payload.signature`, base64url without padding), header
  `{"alg":"RS256"}`, RSA PKCS#1 v1.5 with SHA-256 over `header.payload`.
- HS_SIGNATURE claims: `digests` (SHA-256 of each value's RFC 3651 encoding without its index and
  timestamp, standard base64), `iss` (the signer as `index:handle`), `sub` (the handle), times.
  Digests are per index, so an answer with fewer values still verifies what it has.
- HS_CERT claims: `publicKey` (a JWK-like object), `perms`, `iss`, `sub` (the key as
  `index:handle`), times. A chain ends at a self-issued certificate (`sub == iss`) whose key is one
  of the verifier's roots; every link's `perms` must cover the handle.

Where this module departs from stock hdllib it says so: CNRI's verifier trusts only roots on
`0.0/0.0` (ChainVerifier.TRUST_ROOT_HANDLE); `verify_record` takes the roots it is given, the
node's own key by default (`resolver verify`), as IDIS trusted-resolution SDKs configured with it do.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from resolver.native.signing import value_digest

MAX_CHAIN = 50  # ChainBuilder: longer chains are refused
PERMISSIONS = ("everything", "derivedPrefixes", "handlesUnderThisPrefix", "thisHandle")


class TrustError(Exception):
    """A JWS or a chain that cannot be read or does not hold, with the reason."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise TrustError(f"not base64url: {exc}") from None


def _integer(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


# SM2 with SM3 in a JWS (issue 17 item 5). JOSE registers no name for it; hdllib reads only "RS*"
# and "DS*" (JsonWebSignatureImpl), so no stock Handle client verifies these: verifiers that know
# SM2 (IDIS SDKs, `resolver verify`) do. The signature is 64 octets r || s (resolver/core/sm.py),
# the user id the GM/T 0009 default; the key's JWK is {"kty": "EC", "crv": "SM2", "x", "y"}.
SM2_ALG = "SM2SM3"
ALGS = ("RS256", SM2_ALG)
TrustKey = Any  # an RSA public key, or resolver.core.sm.SM2PublicKey


def _is_sm2(key: Any) -> bool:
    from resolver.core import sm

    return isinstance(key, sm.SM2PublicKey | sm.SM2PrivateKey)


def jwk(key: TrustKey) -> dict[str, str]:
    """The public key as the claims carry it (GsonUtility.PublicKeyTypeHierarchyAdapter for RSA)."""
    if _is_sm2(key):
        return {"kty": "EC", "crv": "SM2", "x": _b64url(key.raw()[:32]), "y": _b64url(key.raw()[32:])}
    numbers = key.public_numbers()
    return {"kty": "RSA", "n": _integer(numbers.n), "e": _integer(numbers.e)}


def key_of(claim: Any) -> TrustKey:
    """The public key of a certificate's `publicKey` claim: RSA, or SM2."""
    from resolver.core import sm

    if isinstance(claim, dict) and claim.get("kty") == "EC" and claim.get("crv") == "SM2":
        try:
            x, y = _unb64url(str(claim["x"])), _unb64url(str(claim["y"]))
            if len(x) != 32 or len(y) != 32:
                raise ValueError("x and y are 32 octets each")
            return sm.SM2PublicKey.from_raw(x + y)
        except (KeyError, ValueError) as exc:
            raise TrustError(f"the certificate's SM2 publicKey cannot be read: {exc}") from None
    if not isinstance(claim, dict) or claim.get("kty") != "RSA":
        raise TrustError("the certificate's publicKey is not an RSA or SM2 key")
    try:
        n = int.from_bytes(_unb64url(str(claim["n"])), "big")
        e = int.from_bytes(_unb64url(str(claim["e"])), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    except (KeyError, ValueError) as exc:
        raise TrustError(f"the certificate's publicKey cannot be read: {exc}") from None


def sign_jws(claims: Mapping[str, Any], key: Any) -> str:
    """A compact JWS of `claims`: RS256 with an RSA private key, SM2SM3 with an SM2 one."""
    from resolver.core import sm

    alg = SM2_ALG if _is_sm2(key) else "RS256"
    header = b'{"alg":"SM2SM3"}' if alg == SM2_ALG else b'{"alg":"RS256"}'
    signing_input = _b64url(header) + "." + _b64url(orjson.dumps(dict(claims)))
    if alg == SM2_ALG:
        signature = sm.sign(key, signing_input.encode("ascii"))
    else:
        signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64url(signature)


@dataclass(frozen=True)
class Jws:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    def verifies_with(self, key: TrustKey) -> bool:
        """Whether the key made this signature, the key's type matching the header's alg."""
        from resolver.core import sm

        if _is_sm2(key):
            return self.header.get("alg") == SM2_ALG and sm.verify(key, self.signing_input, self.signature)
        if self.header.get("alg") != "RS256":
            return False
        try:
            key.verify(self.signature, self.signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True


def read_jws(text: str) -> Jws:
    """A compact JWS (the data of an HS_SIGNATURE or HS_CERT value); TrustError when malformed."""
    parts = text.strip().split(".")
    if len(parts) != 3:
        raise TrustError("a JWS has three parts separated by dots")
    try:
        header, claims = orjson.loads(_unb64url(parts[0])), orjson.loads(_unb64url(parts[1]))
    except orjson.JSONDecodeError as exc:
        raise TrustError(f"the JWS header or payload is not JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TrustError("the JWS header and payload must be JSON objects")
    if header.get("alg") not in ALGS:
        raise TrustError(f"unsupported JWS algorithm {header.get('alg')!r:.20} (RS256 and SM2SM3 are)")
    return Jws(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), _unb64url(parts[2]))


def _times(now: float, lifetime: float) -> dict[str, int]:
    return {"exp": int(now + lifetime), "nbf": int(now) - 60, "iat": int(now)}


def signature_claims(
    handle: str,
    encoded: Mapping[int, bytes],
    issuer: str,
    now: float | None = None,
    lifetime: float = 2 * 365 * 86400,
) -> dict[str, Any]:
    """HS_SIGNATURE claims over `encoded` (index -> the value's RFC 3651 encoding)."""
    digests = [{"index": index, "digest": value_digest(encoded[index])} for index in sorted(encoded)]
    return {
        "digests": {"alg": "SHA-256", "digests": digests},
        "iss": issuer,
        "sub": handle,
        **_times(time.time() if now is None else now, lifetime),
    }


def certificate_claims(
    subject: str,
    issuer: str,
    key: rsa.RSAPublicKey,
    perms: Sequence[tuple[str, str]],
    now: float | None = None,
    lifetime: float = 2 * 365 * 86400,
) -> dict[str, Any]:
    """HS_CERT claims: `key` (of `subject`, an `index:handle`) may sign what `perms` (handle,
    permission) cover, said by `issuer`."""
    for _, perm in perms:
        if perm not in PERMISSIONS:
            raise TrustError(f"unknown permission {perm!r}; known: {', '.join(PERMISSIONS)}")
    return {
        "perms": [{"handle": h, "perm": perm} for h, perm in perms],
        "publicKey": jwk(key),
        "iss": issuer,
        "sub": subject,
        **_times(time.time() if now is None else now, lifetime),
    }


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _upper(text: str) -> str:
    """`Util.upperCase`: ASCII letters only, as hdllib folds the UTF-8 octets."""
    return text.translate(_ASCII_UPPER)


def _upper_prefix(handle: str) -> str:
    """`Util.upperCasePrefix`: the prefix upper-cased, the whole handle for a global (`0.`) one."""
    if handle.startswith("0."):
        return _upper(handle)
    prefix, slash, rest = handle.partition("/")
    return _upper(prefix) + slash + rest


def _equals_prefix_ci(handle: str, other: str) -> bool:
    """`Util.equalsPrefixCI`: equal octets, ASCII case ignored up to the first slash of `handle`
    (in the whole handle when `handle` is global, `0.`); the suffix compared exactly."""
    first, second = handle.encode(), other.encode()
    if len(first) != len(second):
        return False
    slash = len(first) if handle.startswith("0.") else first.find(b"/")
    cut = len(first) if slash < 0 else slash
    return first[:cut].upper() == second[:cut].upper() and first[cut:] == second[cut:]


def _under_prefix(handle: str, prefix: str) -> bool:
    """`Util.isHandleUnderPrefix`: `prefix` is a `0.NA/` handle and `handle` is under it."""
    prefix, handle = _upper(prefix), _upper_prefix(handle)
    return prefix.startswith("0.NA/") and handle.startswith(prefix.removeprefix("0.NA/") + "/")


def _derived_from(handle: str, ancestor: str) -> bool:
    """`Util.isDerivedFrom`: `handle` is a `0.NA/` handle strictly below `ancestor` (the
    reference leaves `handle == ancestor` out)."""
    handle = _upper(handle)
    return handle.startswith("0.NA/") and handle.startswith(_upper(ancestor) + ".")


def _zero_na(handle: str) -> str:
    """`Util.getZeroNAHandle`: the prefix handle of `handle` (`0.NA/0.NA` when it has no slash)."""
    prefix, slash, _ = handle.partition("/")
    return "0.NA/" + _upper(prefix) if slash else "0.NA/0.NA"


def permits(perm: Mapping[str, Any], handle: str) -> bool:
    """HandleVerifier.verifyPermissionsAreAuthorizedOverHandle for one permission, as hdllib
    decides it (tests/unit/test_hdllib_vectors.py holds its answers for the edge cases)."""
    target, kind = str(perm.get("handle", "")), perm.get("perm")
    if kind == "everything":
        return True
    if kind == "thisHandle":
        return _equals_prefix_ci(handle, target) or _under_prefix(handle, target)
    if kind == "derivedPrefixes":
        return _derived_from(handle, target) or _derived_from(_zero_na(handle), target)
    if kind == "handlesUnderThisPrefix":
        return _under_prefix(handle, target)
    return False


@dataclass
class ValuesVerdict:
    """What an HS_SIGNATURE says about the values at hand (HandleVerifier.verifyValues)."""

    verified: list[int] = field(default_factory=list)
    bad_digest: list[int] = field(default_factory=list)
    unsigned: list[int] = field(default_factory=list)  # at hand, no digest for it
    missing: list[int] = field(default_factory=list)  # signed, not at hand (a filtered answer)

    @property
    def holds(self) -> bool:
        return not self.bad_digest and not self.unsigned


def check_values(claims: Mapping[str, Any], encoded: Mapping[int, bytes]) -> ValuesVerdict:
    digests = claims.get("digests")
    if not isinstance(digests, dict) or digests.get("alg") not in ("SHA-256", "SHA256"):
        raise TrustError("the signature's digests are missing or not SHA-256")
    signed = {int(d["index"]): str(d["digest"]) for d in digests.get("digests", []) if isinstance(d, dict)}
    verdict = ValuesVerdict()
    for index, octets in sorted(encoded.items()):
        if index not in signed:
            verdict.unsigned.append(index)
        elif value_digest(octets) == signed[index]:
            verdict.verified.append(index)
        else:
            verdict.bad_digest.append(index)
    verdict.missing = sorted(set(signed) - set(encoded))
    return verdict


# A certificate by its `index:handle` reference (the value's JWS text), or None when there is none.
Fetch = Callable[[str], str | None]


def verify_chain(
    signature: Jws, handle: str, fetch: Fetch, roots: Sequence[TrustKey], now: float | None = None
) -> list[str]:
    """The `index:handle` links from the signer up to a trusted root, once every link verifies,
    is in its time and is permitted over `handle`; TrustError naming the link that fails."""
    now = time.time() if now is None else now
    roots_der = {_der(k) for k in roots}
    child, links, seen = signature, list[str](), set[str]()
    while True:
        _in_time(child.claims, now)
        issuer = str(child.claims.get("iss", ""))
        chain = child.claims.get("chain")
        reference = str(chain[0]) if isinstance(chain, list) and chain else issuer
        if reference in seen or len(links) >= MAX_CHAIN:
            raise TrustError(f"the chain loops or is longer than {MAX_CHAIN} links at {reference}")
        seen.add(reference)
        text = fetch(reference)
        if text is None:
            raise TrustError(f"no certificate at {reference}")
        parent = read_jws(text)
        if str(parent.claims.get("sub", "")) != issuer:
            raise TrustError(
                f"the chain is broken: {reference} certifies {parent.claims.get('sub')}, not {issuer}"
            )
        key = key_of(parent.claims.get("publicKey"))
        if not child.verifies_with(key):
            raise TrustError(f"the signature by {issuer} does not verify with the key {reference} certifies")
        perms = parent.claims.get("perms") or []
        if not any(permits(p, handle) for p in perms if isinstance(p, dict)):  # every link, over the handle
            raise TrustError(f"{reference} does not permit {issuer} to sign {handle}")
        links.append(reference)
        if parent.claims.get("sub") == parent.claims.get("iss"):  # self-issued: the root
            _in_time(parent.claims, now)
            if not parent.verifies_with(key):
                raise TrustError(f"the root certificate {reference} does not verify with its own key")
            if _der(key) not in roots_der:
                raise TrustError(f"the root {reference} is not one this verifier trusts")
            return links
        child = parent


def _der(key: TrustKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    if _is_sm2(key):
        return b"SM2:" + bytes(key.raw())
    return bytes(
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _in_time(claims: Mapping[str, Any], now: float) -> None:
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if isinstance(exp, int | float) and now > exp:
        raise TrustError(f"expired at {int(exp)} ({claims.get('iss')})")
    if isinstance(nbf, int | float) and now < nbf:
        raise TrustError(f"not valid before {int(nbf)} ({claims.get('iss')})")
