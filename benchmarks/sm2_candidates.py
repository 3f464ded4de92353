"""SM2/SM3 libraries compared: published vectors first, then sign/verify speed against RSA and P-256.

Issue 17 item 5 chose the node's SM2 library on evidence. For every candidate that imports, this
checks SM3 of "abc" and of "abcd"*16 (GB/T 32905-2016 appendix A), verifies the published
signature of GM/T 0003.5-2012 / GB/T 32918.5 annex A (recommended curve sm2p256v1, user id
"1234567812345678", message "message digest"; the same vector as openssl's test/sm2_internal_test.c
`sm2_sig_test`), checks ZA where the library exposes it, refuses a tampered message and signature,
and verifies its own signatures with every other candidate (so a library that signs without ZA,
or with another id, shows up). Then it times sign and verify (median of batches, each phase bounded
by --seconds) and, for comparison, RSA-2048 PKCS#1 v1.5 SHA-256 and ECDSA P-256 SHA-256 with
`cryptography`.

Candidates not installed are skipped. Try them in a scratch venv, not the project's:

    python3.11 -m venv /tmp/smvenv
    /tmp/smvenv/bin/pip install cryptography gmssl-pyx gmssl-fast tongsuopy gmssl snowland-smx
    /tmp/smvenv/bin/python benchmarks/sm2_candidates.py [--ops 2000] [--seconds 5]

gmssl-python, pygmssl and easy-gmssl load GmSSL 3's shared library (libgmssl.so) through ctypes;
Debian has no package for it, so they are reported as not loadable unless one is installed by hand.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# GB/T 32905-2016 appendix A (also GM/T 0004-2012 appendix A).
SM3_ABC = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
SM3_ABCD16 = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"

# GM/T 0003.5-2012 / GB/T 32918.5 annex A, recommended curve, default id of GM/T 0009-2012.
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
USER_ID = b"1234567812345678"
MESSAGE = b"message digest"
PRIVATE = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
PUBLIC = bytes.fromhex(
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
ZA = "b2e14c5c79c6df5b85f4fe7ed8db7a262b9da7e07ccb0ea9f4747b8ccda8a4f3"
SIGNATURE = bytes.fromhex(
    "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
    "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
)


def der_to_raw(der: bytes) -> bytes:
    """ASN.1 SEQUENCE { INTEGER r, INTEGER s } to 64-byte r||s (strict enough for a probe)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def raw_to_der(raw: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


@dataclass
class Candidate:
    """One library behind the same four calls; signatures are raw r||s at this boundary."""

    name: str
    kind: str
    native_signature: str
    sm3: Callable[[bytes], bytes]
    sign: Callable[[bytes, bytes, bytes], bytes]  # private, public, message -> r||s (default id)
    verify: Callable[[bytes, bytes, bytes], bool]  # public, message, r||s -> ok (default id)
    za: Callable[[bytes, bytes], bytes] | None = None  # public, user id -> ZA
    custom_id: bool = False


def load_gmssl_pyx() -> Candidate:
    g: Any = importlib.import_module("gmssl_pyx")

    def verify(public: bytes, message: bytes, raw: bytes) -> bool:
        return bool(g.sm2_verify(public, message, raw_to_der(raw), signer_id=USER_ID))

    return Candidate(
        "gmssl-pyx",
        "native (GmSSL 3, linked in the wheel)",
        "DER",
        g.sm3_hash,
        lambda d, q, m: der_to_raw(g.sm2_sign(d, q, m, signer_id=USER_ID)),
        verify,
        custom_id=True,
    )


def load_gmssl_fast() -> Candidate:
    g: Any = importlib.import_module("gmssl_fast")
    keys: dict[bytes, Any] = {}

    def handle(private: bytes | None, public: bytes) -> Any:
        key = (private or b"") + public
        if key not in keys:
            keys[key] = g.SM2(private_key=private.hex() if private else None, public_key=public.hex())
        return keys[key]

    return Candidate(
        "gmssl-fast",
        "native (GmSSL, static)",
        "raw r‖s",
        g.sm3,
        lambda d, q, m: handle(d, q).sign(m),
        lambda q, m, sig: bool(handle(None, q).verify(m, sig)),
    )


def load_tongsuopy() -> Candidate:
    ec: Any = importlib.import_module("tongsuopy.crypto.asymciphers.ec")
    hashes: Any = importlib.import_module("tongsuopy.crypto.hashes")
    exceptions: Any = importlib.import_module("tongsuopy.crypto.exceptions")
    privs: dict[bytes, Any] = {}
    pubs: dict[bytes, Any] = {}

    def sm3(data: bytes) -> bytes:
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return bytes(h.finalize())

    def sign(private: bytes, public: bytes, message: bytes) -> bytes:
        if private not in privs:
            privs[private] = ec.derive_private_key(int.from_bytes(private, "big"), ec.SM2())
        return der_to_raw(privs[private].sign(message, ec.ECDSA(hashes.SM3())))

    def verify(public: bytes, message: bytes, raw: bytes) -> bool:
        if public not in pubs:
            pubs[public] = ec.EllipticCurvePublicKey.from_encoded_point(ec.SM2(), b"\x04" + public)
        try:
            pubs[public].verify(raw_to_der(raw), message, ec.ECDSA(hashes.SM3()))
        except exceptions.InvalidSignature:
            return False
        return True

    return Candidate("tongsuopy", "native (Tongsuo in the wheel)", "DER", sm3, sign, verify)


def load_gmssl() -> Candidate:
    sm2: Any = importlib.import_module("gmssl.sm2")
    sm3m: Any = importlib.import_module("gmssl.sm3")
    func: Any = importlib.import_module("gmssl.func")

    def crypt(private: bytes, public: bytes) -> Any:
        return sm2.CryptSM2(private_key=private.hex(), public_key=public.hex())

    return Candidate(
        "gmssl (duanhongyi)",
        "pure Python",
        "hex r‖s",
        lambda d: bytes.fromhex(sm3m.sm3_hash(func.bytes_to_list(d))),
        lambda d, q, m: bytes.fromhex(crypt(d, q).sign_with_sm3(m)),
        lambda q, m, sig: bool(crypt(b"\x01", q).verify_with_sm3(sig.hex(), m)),
    )


def load_pysmx() -> Candidate:
    s2: Any = importlib.import_module("pysmx.SM2")
    s3: Any = importlib.import_module("pysmx.SM3")
    import secrets

    return Candidate(
        "snowland-smx (pysmx)",
        "pure Python",
        "raw r‖s",
        lambda d: bytes(s3.digest(list(d))),
        lambda d, q, m: s2.Sign(m, d, secrets.token_hex(32), 64, uid=USER_ID),
        lambda q, m, sig: bool(s2.Verify(sig, m, q, 64, uid=USER_ID)),
        za=lambda q, uid: bytes.fromhex(s2.get_za(uid, q)),
        custom_id=True,
    )


def load_ctypes_gmssl(distribution: str) -> Candidate:
    """gmssl-python, pygmssl and easy-gmssl: ctypes over libgmssl.so, so only the library is checked.

    Not imported: pygmssl calls exit() when the library is missing, and gmssl-python's top-level
    gmssl.py is shadowed by the gmssl package when both are installed.
    """
    import importlib.metadata
    from ctypes.util import find_library

    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ImportError(f"{distribution} is not installed") from exc
    if find_library("gmssl") is None:
        raise ImportError("libgmssl.so (GmSSL 3) is not installed and Debian has no package for it")
    raise ImportError("loads libgmssl.so; not probed further")


def load_node_wrapper() -> Candidate:
    """The node's own resolver/core/sm.py (gmssl-pyx, ZA and e computed before the digest calls)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sm: Any = importlib.import_module("resolver.core.sm")
    private = sm.SM2PrivateKey.from_raw(PRIVATE)
    public = sm.SM2PublicKey.from_raw(PUBLIC)
    return Candidate(
        "resolver.core.sm (gmssl-pyx digest calls)",
        "native (GmSSL 3, linked in the wheel)",
        "raw r‖s",
        sm.sm3,
        lambda d, q, m: sm.sign(private, m),
        lambda q, m, sig: bool(sm.verify(public, m, sig)),
        za=lambda q, uid: sm.za(sm.SM2PublicKey.from_raw(q), uid),
        custom_id=True,
    )


LOADERS: list[tuple[str, Callable[[], Candidate]]] = [
    ("resolver.core.sm", load_node_wrapper),
    ("gmssl-pyx", load_gmssl_pyx),
    ("gmssl-fast", load_gmssl_fast),
    ("tongsuopy", load_tongsuopy),
    ("gmssl", load_gmssl),
    ("snowland-smx", load_pysmx),
    ("gmssl-python", lambda: load_ctypes_gmssl("gmssl-python")),
    ("pygmssl", lambda: load_ctypes_gmssl("pygmssl")),
    ("easy-gmssl", lambda: load_ctypes_gmssl("easy-gmssl")),
]


def check(c: Candidate, others: list[Candidate]) -> list[str]:
    """The failures of one candidate against the published vectors (empty: correct)."""
    failures = []

    def expect(label: str, got: object, want: object) -> None:
        if got != want:
            failures.append(f"{label}: got {got!r}, want {want!r}")

    def safe(call: Callable[[], bool]) -> bool | str:
        try:
            return call()
        except Exception as exc:  # a refusal by exception counts as a refusal
            return f"raised {type(exc).__name__}"

    expect("SM3 abc", c.sm3(b"abc").hex(), SM3_ABC)
    expect("SM3 abcd*16", c.sm3(b"abcd" * 16).hex(), SM3_ABCD16)
    expect("verify annex A", c.verify(PUBLIC, MESSAGE, SIGNATURE), True)
    if c.za is not None:
        expect("ZA", c.za(PUBLIC, USER_ID).hex(), ZA)
    if safe(lambda: c.verify(PUBLIC, MESSAGE + b"!", SIGNATURE)) is True:
        failures.append("accepts a changed message")
    flipped = SIGNATURE[:63] + bytes([SIGNATURE[63] ^ 1])
    if safe(lambda: c.verify(PUBLIC, MESSAGE, flipped)) is True:
        failures.append("accepts a changed signature")
    zero_s = SIGNATURE[:32] + bytes(32)
    if safe(lambda: c.verify(PUBLIC, MESSAGE, zero_s)) is True:
        failures.append("accepts s = 0")
    own = c.sign(PRIVATE, PUBLIC, b"cross check")
    if len(own) != 64:
        failures.append(f"signature of {len(own)} bytes")
    for other in others:
        if other is not c and not other.verify(PUBLIC, b"cross check", own):
            failures.append(f"its signature fails in {other.name}")
    return failures


def per_op(call: Callable[[], object], ops: int, seconds: float) -> float:
    """Median microseconds per call over batches of 50, stopping at ops calls or seconds."""
    samples = []
    deadline = time.perf_counter() + seconds
    done = 0
    while done < ops and time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(50):
            call()
        samples.append((time.perf_counter() - start) / 50 * 1e6)
        done += 50
    return statistics.median(samples)


def baselines(ops: int, seconds: float) -> list[tuple[str, float, float]]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pub = rsa_key.public_key()
    rsa_sig = rsa_key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pub = ec_key.public_key()
    ec_sig = ec_key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    return [
        (
            "RSA-2048 PKCS#1 v1.5 SHA-256 (cryptography)",
            per_op(lambda: rsa_key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256()), ops, seconds),
            per_op(
                lambda: rsa_pub.verify(rsa_sig, MESSAGE, padding.PKCS1v15(), hashes.SHA256()),
                ops,
                seconds,
            ),
        ),
        (
            "ECDSA P-256 SHA-256 (cryptography)",
            per_op(lambda: ec_key.sign(MESSAGE, ec.ECDSA(hashes.SHA256())), ops, seconds),
            per_op(lambda: ec_pub.verify(ec_sig, MESSAGE, ec.ECDSA(hashes.SHA256())), ops, seconds),
        ),
    ]


def cryptography_sm_support() -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    h = hashes.Hash(hashes.SM3())
    h.update(b"abc")
    sm3_ok = h.finalize().hex() == SM3_ABC
    curve = any("SM2" in name.upper() for name in dir(ec))
    return f"cryptography: SM3 {'correct' if sm3_ok else 'WRONG'}, SM2 curve {'yes' if curve else 'none'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=2000, help="operations per phase at most")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per phase at most")
    parser.add_argument("--check-only", action="store_true", help="vectors only, no timing")
    args = parser.parse_args()

    print(cryptography_sm_support())
    loaded: list[Candidate] = []
    for name, loader in LOADERS:
        try:
            loaded.append(loader())
        except Exception as exc:
            print(f"{name}: skipped ({type(exc).__name__}: {exc})")
    verdicts = {c.name: check(c, loaded) for c in loaded}
    good = [c for c in loaded if not verdicts[c.name]]
    # Cross-verification only means something among correct candidates: check again against them.
    verdicts = {c.name: check(c, good) for c in loaded}

    print()
    print("| library | kind | signature as given | custom user id | vectors | sign µs | verify µs |")
    print("|---|---|---|---|---|---|---|")
    for c in loaded:
        failures = verdicts[c.name]
        if failures:
            row = "FAIL: " + "; ".join(failures), "-", "-"
        elif args.check_only:
            row = "pass", "-", "-"
        else:
            sign = per_op(lambda c=c: c.sign(PRIVATE, PUBLIC, MESSAGE), args.ops, args.seconds)
            verify = per_op(lambda c=c: c.verify(PUBLIC, MESSAGE, SIGNATURE), args.ops, args.seconds)
            row = "pass", f"{sign:,.0f}", f"{verify:,.0f}"
        custom = "yes" if c.custom_id else "no (default id only)"
        print(f"| {c.name} | {c.kind} | {c.native_signature} | {custom} | {row[0]} | {row[1]} | {row[2]} |")
    for name, sign, verify in [] if args.check_only else baselines(args.ops, args.seconds):
        print(f"| {name} | native (OpenSSL) | DER | - | - | {sign:,.0f} | {verify:,.0f} |")


if __name__ == "__main__":
    main()
