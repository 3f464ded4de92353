"""Fixed vectors computed with CNRI's own Java (hdllib, compiled from MistraR/handle commit
5556c45c2dfc86409bf84c90d50c2fec8c981eb9 with OpenJDK 17 on 2026-12-04; how to rebuild them:
docs/hdllib-handcheck.md). No Java is needed here: the vectors are literals, and each test names
the reference class and function that produced them. Our side: resolver/native/signing.py
(seckey_mac, check_seckey_answer, hashed_secret, pubkey_answer, check_pubkey_answer,
encode_public_key, value_digest), resolver/native/protocol.py encode_value and
resolver/native/trust.py (read_jws, check_values, verify_chain, permits, sign_jws,
signature_claims, certificate_claims).

The RSA key is a throwaway made for these vectors (it signs nothing else). RSA PKCS#1 v1.5
signatures are deterministic, so every signature below is fixed."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from resolver.native import protocol as p
from resolver.native import signing, trust

KEY_PEM = b"""\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCzIIkoyA0WLJyO
G+tf0q+O0oixyKJ+/XWDJI3hDK/Zhdm/4KEaqkBDc98Y+nYSERgsfg62QP9ACt2g
Iba+AqmSHbvILsqOZIBfBCrc3bQhs49rVS4MwtstYNTGlcP2xpkJLImWz4eUyd+0
kdvM31X4deiVvoU/wtGfLyyoUkE/Dd0sQANBnCVFItiqEdLsAsewpYNZCkpal1xC
4z18iMQdmeiK9US0OKLqQu9kLshmZ0ZIaLjEeqvvVEHRBBmjsE+GhxB+ses9nMQK
9NKBUidwygXXCj4B8vt6sm4s43GymRxj4c+qRxyORHVF+cLLgZgpWnjnJq7ongdW
TAXJQmtjAgMBAAECggEAHow/Z+GJ/cyY3FFdmCddgi1cW3lcYOzHpBhRS952hNGj
W2oq/1mmgPpbQy6/gQBCT6Al0SYPgbP4rMzjFc9tbLo+Ynq8V4FDNTEIQEdc51xw
an0Jz+pRJ5F6Z+11kHm48owSYNI+jHzK9kfjpLI3vpoZEqR9o+yNBCku4/u3HdHt
tdROKxDHonGAYBHoPx7itGtFZmao/EqeLwx/SIKJ00giGWnLKpUnQOcfwJMdTKBX
hA+g/c3rgd2O4O0mNCEy3+XXnVhu6Oy3Rfmet8RTOqH8nAm/3NMl8hpmrYzl6YLl
gbFB7H0tBSWvjjQm9y8CgqRIHBJFRvvT4zpvk5Sb0QKBgQDm1UIyGq2aGENXDRIZ
Qo/d5JS1eNXM9cUbcaQZ5szldEDVbSl+6EagHgKvlgv22KbvXlxi90R/YcPiZAjG
zdRuftI+fMWokrrt7W9EUc1c7p6RNzCasqSLUhwklNRsqYyy1NGNbnb+R9gf3Aq2
Ma6CybE6P40dBCJdkxUGHws0cwKBgQDGqB8QX5bKC4Iu5qTmG9t6wdbKGpynYVNt
eovaNToUymau3uaXwpHevmhXW9G20V0/k3mC+OHmDkFd+6hYtEVJ5jyi7tpsQVIX
Gr28yfHR5XhmaUJCfOBE9B1gPKRrclM/C3SjW4Xe709amreUlNTvMt0BNwAqb3JP
LsJBXjwhUQKBgQDkGnVRgd9vWO6ihT4PTCFSymDRe1j7MxrWZdQd7F8pl1nCDh9l
Uy8HZuCMlp+4DJvaCssM2QANSJUDkIrDuf5kOlqUeUPxsx2ZpHnBb3yaiwqSwZD8
LfA/5KH+3DuWLW3mAjwZoMFhwakmwpCrPikPATRrNQXDWKSFB6VM6TxvVQKBgH3G
May3KIwRT0IMiziZSJNnKGta//XFXAHDhcoIyxYgs3Rh8dMBwEMrgHpWyucZlRVM
dLFki/mQ6vfq/kHzGK9aEugBm87QaH3yU1C09uKyi1EjsWzRDVj6yaKFon/YqTYQ
Na+7oX1tPGub60EqHcq4BE7hmLxFRTU24IxscluRAoGAdOT8vMqXBL0aepbtS5F9
PkWxLFdwzRJbS4giS3ugUROrRLhfU98fU3NqgiUivAVIC/MW6NO6No3aZJjO7vc+
Hx7ftuxpC79JUOdOxHOtZsXt6B3we2l5HTMFoRvIX2mdYe/gm5qk0n2IHU3Cmok9
3wAtHUmgQJO608+/SJtpeKE=
-----END PRIVATE KEY-----
"""

SECRET = b"vector-secret-1"
NONCE = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
SALT = bytes.fromhex("11223344556677889900aabbccddeeff")
# ResolutionRequest("88.123/VEC-1"), protocol 2.11, expiration 1767268800: getEncodedMessageBody()
REQUEST_BODY_HEX = (
    "000000010000000019000000ffff0000695661c0000000180000000c38382e3132332f5645432d310000000000000000"
)
# Util.doDigest(HASH_CODE_SHA256, body): the request digest a challenge carries
REQUEST_DIGEST = bytes.fromhex("7d6d09a4cdb8d49fce1e4b419dfa853217b64f378c0c97fe5ab5ca93d05d1574")

# Util.doMac(code, nonce || digest, key[, params]) for SECRET, and for the hashed secret
MACS = {
    0x22: "0000001011223344556677889900aabbccddeeff00002710000000a000000014e4752505b8d9565da433e3379065309a44337e3b",
    0x02: "8bb5aca3e41a5310602c8c681fd46379632a1510",
    0x03: "b0da2db418c8980ab24a162f311121b6c3a859bd4eaaa6378c6d1d0b1a25a120",
    0x12: "93dfcee23f4a6a666fee8bdcdad58c86856e9ae7",
    0x13: "5ffebf2d606dd51a862746e034d5dad8c6ae7c7af81a966e32fbcc5c8372bd83",
}
MAC_PBKDF2_HASHED = (
    "0000001011223344556677889900aabbccddeeff00002710000000a000000014d27951ed634fbb790200a9c8da7fe2e6f9f080aa"
)
# Encoder.encodeSecretKey(SECRET, true)
HASHED_SECRET = bytes.fromhex(
    "31393036356432656334636232396665303834393265336131353730623265646563366432646133"
)

# PublicKeyAuthenticationInfo.authenticate(challenge 2.11, SHA-256 request digest)
PUBKEY_ANSWER_HEX = (
    "000000075348412d323536000001007538178acf223769f24d1aaf1422fd22d062360cba4a8340c8b239f164f7"
    "bbcc2759d73c353d22b79904152657b85a0f42d9e5e475ca7d679fe8a37d32e850b156e485b1617d207b75b114"
    "dc14de5b7210ad7fde5b07cf023c5c4a542d326155182df1103e3c5f4116f96933e27f72dee688240900f4c937"
    "375d0c69f74ca3afb54f0a190880dffb1f969edb9efd1aa5a80a4264eb4dd11895de08cdd6a48520d0176a5b74"
    "e58dd672739334d295cbef4d7fa5666305aa3aebb10fc9c58a90444d7d160e8be9876ddb6c6810512d02b74d47"
    "68b29feaa7b0d98976c3d8c5aee3f83cae2ce7cbefddaafb5f5f3a00d57fa309b73fda6a0c228d235e4ca5c5c7"
    "01"
)
# Util.getBytesFromPublicKey(public key)
RSA_PUB_KEY_HEX = (
    "0000000b5253415f5055425f4b45590000000000030100010000010100b3208928c80d162c9c8e1beb5fd2af8e"
    "d288b1c8a27efd7583248de10cafd985d9bfe0a11aaa404373df18fa761211182c7e0eb640ff400adda021b6be"
    "02a9921dbbc82eca8e64805f042adcddb421b38f6b552e0cc2db2d60d4c695c3f6c699092c8996cf8794c9dfb4"
    "91dbccdf55f875e895be853fc2d19f2f2ca852413f0ddd2c4003419c254522d8aa11d2ec02c7b0a583590a4a5a"
    "975c42e33d7c88c41d99e88af544b438a2ea42ef642ec86667464868b8c47aabef5441d10419a3b04f8687107e"
    "b1eb3d9cc40af4d281522770ca05d70a3e01f2fb7ab26e2ce371b2991c63e1cfaa471c8e447545f9c2cb819829"
    "5a78e726aee89e07564c05c9426b6300000000"
)

# Encoder.encodeHandleValue of the three values (TTL relative, refs none)
ENCODED = {
    1: "000000016955b90000000151800e0000000355524c0000001768747470733a2f2f6578616d706c652e636f6d2f76656300000000",
    2: "000000026955b9010000000e100e00000005454d41494c0000000f766563406578616d706c652e636f6d00000000",
    100: "000000646955b90200000151800a00000004444553430000000ce4b8ade696872076616c756500000000",
}
# HandleValueDigester.digest(values, "SHA-256")
DIGESTS = {
    "alg": "SHA-256",
    "digests": [
        {"index": 1, "digest": "KzOea68vjK8iVcNXYrWEDVJLWe+j/BnJ/kAGJj1megA="},
        {"index": 2, "digest": "O3kz6k83214KbMIBBC2V7tOW3y5ggKl06KRxMtlATNc="},
        {"index": 100, "digest": "GSZsp8xNq1lt7BdseuFgsRJ+9u8YBDnnA1tckytgXjk="},
    ],
}

# HandleSigner.createPayload + signClaims (iat fixed at 1767225600), issuer 300:0.NA/88.123
HDLLIB_SIGNATURE = (
    "eyJhbGciOiJSUzI1NiJ9.eyJkaWdlc3RzIjp7ImFsZyI6IlNIQS0yNTYiLCJkaWdlc3RzIjpbeyJpbmRleCI6MSwiZ"
    "GlnZXN0IjoiS3pPZWE2OHZqSzhpVmNOWFlyV0VEVkpMV2Urai9Cbkova0FHSmoxbWVnQT0ifSx7ImluZGV4IjoyLCJ"
    "kaWdlc3QiOiJPM2t6Nms4MzIxNEtiTUlCQkMyVjd0T1czeTVnZ0tsMDZLUnhNdGxBVE5jPSJ9LHsiaW5kZXgiOjEwM"
    "CwiZGlnZXN0IjoiR1Nac3A4eE5xMWx0N0Jkc2V1RmdzUkorOXU4WUJEbm5BMXRja3l0Z1hqaz0ifV19LCJpc3MiOiI"
    "zMDA6MC5OQS84OC4xMjMiLCJzdWIiOiI4OC4xMjMvVkVDLTEiLCJleHAiOjE4MzAyOTc2MDAsIm5iZiI6MTc2NzIyN"
    "TU0MCwiaWF0IjoxNzY3MjI1NjAwfQ.dZNhgg_z-VeHiaBipYS6SQXSMRWrZGJlZ9sK0nxaEaS3uDeCIZ8FjapfZjhd"
    "WCq7020Vs8LB4jvs7KUjhSaeImjLXjHYnjrCoqACuWs2B82r-wjfMvwM2C2kkEw_lfXNcpwZ2Kpn43cwdLMMAaBqYT"
    "Ow7xMmTn8HWeqmssfp0jZX5XsNsBM1A6teJ9AS2t-rZ599oSqffKMKvcdloQwgqGxlfR32kvnmQg_iL4gpKtCT6YKa"
    "nopXPKMDXO_1lVoY_9WRWc3ePOWDV7Gy7X9h41ShhvxkQKOliF0DvvySchZrEK0V4A_O31M5keihrU4kzVDRqt0MF7"
    "2H3D_NRxYx6w"
)
# HandleSigner.signClaims of signPermissions' claims: self-issued, derivedPrefixes and
# handlesUnderThisPrefix over 0.NA/88.123
HDLLIB_CERT = (
    "eyJhbGciOiJSUzI1NiJ9.eyJwZXJtcyI6W3siaGFuZGxlIjoiMC5OQS84OC4xMjMiLCJwZXJtIjoiZGVyaXZlZFByZ"
    "WZpeGVzIn0seyJoYW5kbGUiOiIwLk5BLzg4LjEyMyIsInBlcm0iOiJoYW5kbGVzVW5kZXJUaGlzUHJlZml4In1dLCJ"
    "wdWJsaWNLZXkiOnsia3R5IjoiUlNBIiwibiI6InN5Q0pLTWdORml5Y2podnJYOUt2anRLSXNjaWlmdjExZ3lTTjRRe"
    "XYyWVhadi1DaEdxcEFRM1BmR1BwMkVoRVlMSDRPdGtEX1FBcmRvQ0cydmdLcGtoMjd5QzdLam1TQVh3UXEzTjIwSWJ"
    "PUGExVXVETUxiTFdEVXhwWEQ5c2FaQ1N5SmxzLUhsTW5mdEpIYnpOOVYtSFhvbGI2RlA4TFJueThzcUZKQlB3M2RMR"
    "UFEUVp3bFJTTFlxaEhTN0FMSHNLV0RXUXBLV3BkY1F1TTlmSWpFSFpub2l2VkV0RGlpNmtMdlpDN0labWRHU0dpNHh"
    "IcXI3MVJCMFFRWm83QlBob2NRZnJIclBaekVDdlRTZ1ZJbmNNb0Yxd28tQWZMN2VySnVMT054c3BrY1ktSFBxa2Nja"
    "mtSMVJmbkN5NEdZS1ZwNDV5YXU2SjRIVmt3RnlVSnJZdyIsImUiOiJBUUFCIn0sImlzcyI6IjMwMDowLk5BLzg4LjE"
    "yMyIsInN1YiI6IjMwMDowLk5BLzg4LjEyMyIsImV4cCI6MTgzMDI5NzYwMCwibmJmIjoxNzY3MjI1NTQwLCJpYXQiO"
    "jE3NjcyMjU2MDB9.C-9uN1mdQfJsv7yxKMfqQ1VG-EQYQMxlTjBi_KqPnqQ284OFe__Ltg953hAnjBF67dp2RGE65x"
    "CI2vX4F0qYroF30m5KyV-krOEjMPTDBK-9-MtW1J-m4EqEHbWRc98VZCHHrXAmnqdgw5VupddhX_6jwSgbvGEcxt5N"
    "s2Fr1Ocb0ox8efU18fk2RUY8JgkHD0z4WUSnPptWvgwGY4hwW2rMVitTbtlh7jUsFjEfb3LTeLOkpmzQWU9wzcR6hh"
    "mQzcBNJnyErDZ-PTVtqOOclcBsTFcN-8CjjkcqUCvhmgzBj-tYiob8Ua8rLINo7Z5zQwCiMQoCIcfL0NUhoPKo7w"
)
# What our trust.sign_jws made from the same inputs; hdllib's HandleVerifier.verifyValues and
# ChainVerifier.verifyValues accepted it (signatureVerifies, dateInRange, correctHandle,
# verified [1, 2, 100], every link authorized)
OUR_SIGNATURE = (
    "eyJhbGciOiJSUzI1NiJ9.eyJkaWdlc3RzIjp7ImFsZyI6IlNIQS0yNTYiLCJkaWdlc3RzIjpbeyJpbmRleCI6MSwiZ"
    "GlnZXN0IjoiS3pPZWE2OHZqSzhpVmNOWFlyV0VEVkpMV2Urai9Cbkova0FHSmoxbWVnQT0ifSx7ImluZGV4IjoyLCJ"
    "kaWdlc3QiOiJPM2t6Nms4MzIxNEtiTUlCQkMyVjd0T1czeTVnZ0tsMDZLUnhNdGxBVE5jPSJ9LHsiaW5kZXgiOjEwM"
    "CwiZGlnZXN0IjoiR1Nac3A4eE5xMWx0N0Jkc2V1RmdzUkorOXU4WUJEbm5BMXRja3l0Z1hqaz0ifV19LCJpc3MiOiI"
    "zMDA6MC5OQS84OC4xMjMiLCJzdWIiOiI4OC4xMjMvVkVDLTEiLCJleHAiOjE4MzAyOTc2MDAsIm5iZiI6MTc2NzIyN"
    "TU0MCwiaWF0IjoxNzY3MjI1NjAwfQ.dZNhgg_z-VeHiaBipYS6SQXSMRWrZGJlZ9sK0nxaEaS3uDeCIZ8FjapfZjhd"
    "WCq7020Vs8LB4jvs7KUjhSaeImjLXjHYnjrCoqACuWs2B82r-wjfMvwM2C2kkEw_lfXNcpwZ2Kpn43cwdLMMAaBqYT"
    "Ow7xMmTn8HWeqmssfp0jZX5XsNsBM1A6teJ9AS2t-rZ599oSqffKMKvcdloQwgqGxlfR32kvnmQg_iL4gpKtCT6YKa"
    "nopXPKMDXO_1lVoY_9WRWc3ePOWDV7Gy7X9h41ShhvxkQKOliF0DvvySchZrEK0V4A_O31M5keihrU4kzVDRqt0MF7"
    "2H3D_NRxYx6w"
)
OUR_CERT = (
    "eyJhbGciOiJSUzI1NiJ9.eyJwZXJtcyI6W3siaGFuZGxlIjoiMC5OQS84OC4xMjMiLCJwZXJtIjoiZGVyaXZlZFByZ"
    "WZpeGVzIn0seyJoYW5kbGUiOiIwLk5BLzg4LjEyMyIsInBlcm0iOiJoYW5kbGVzVW5kZXJUaGlzUHJlZml4In1dLCJ"
    "wdWJsaWNLZXkiOnsia3R5IjoiUlNBIiwibiI6InN5Q0pLTWdORml5Y2podnJYOUt2anRLSXNjaWlmdjExZ3lTTjRRe"
    "XYyWVhadi1DaEdxcEFRM1BmR1BwMkVoRVlMSDRPdGtEX1FBcmRvQ0cydmdLcGtoMjd5QzdLam1TQVh3UXEzTjIwSWJ"
    "PUGExVXVETUxiTFdEVXhwWEQ5c2FaQ1N5SmxzLUhsTW5mdEpIYnpOOVYtSFhvbGI2RlA4TFJueThzcUZKQlB3M2RMR"
    "UFEUVp3bFJTTFlxaEhTN0FMSHNLV0RXUXBLV3BkY1F1TTlmSWpFSFpub2l2VkV0RGlpNmtMdlpDN0labWRHU0dpNHh"
    "IcXI3MVJCMFFRWm83QlBob2NRZnJIclBaekVDdlRTZ1ZJbmNNb0Yxd28tQWZMN2VySnVMT054c3BrY1ktSFBxa2Nja"
    "mtSMVJmbkN5NEdZS1ZwNDV5YXU2SjRIVmt3RnlVSnJZdyIsImUiOiJBUUFCIn0sImlzcyI6IjMwMDowLk5BLzg4LjE"
    "yMyIsInN1YiI6IjMwMDowLk5BLzg4LjEyMyIsImV4cCI6MTgzMDI5NzYwMCwibmJmIjoxNzY3MjI1NTQwLCJpYXQiO"
    "jE3NjcyMjU2MDB9.C-9uN1mdQfJsv7yxKMfqQ1VG-EQYQMxlTjBi_KqPnqQ284OFe__Ltg953hAnjBF67dp2RGE65x"
    "CI2vX4F0qYroF30m5KyV-krOEjMPTDBK-9-MtW1J-m4EqEHbWRc98VZCHHrXAmnqdgw5VupddhX_6jwSgbvGEcxt5N"
    "s2Fr1Ocb0ox8efU18fk2RUY8JgkHD0z4WUSnPptWvgwGY4hwW2rMVitTbtlh7jUsFjEfb3LTeLOkpmzQWU9wzcR6hh"
    "mQzcBNJnyErDZ-PTVtqOOclcBsTFcN-8CjjkcqUCvhmgzBj-tYiob8Ua8rLINo7Z5zQwCiMQoCIcfL0NUhoPKo7w"
)

# HandleVerifier.verifyPermissionsAreAuthorizedOverHandle(handle, [Permission(target, perm)])
HDLLIB_PERMITS = [
    (("0.NA/88.123", "everything"), "99.1/x", True),
    (("0.NA/88.123", "derivedPrefixes"), "88.123/x", False),
    (("0.NA/88.123", "derivedPrefixes"), "0.NA/88.123", False),
    (("0.NA/88.123", "derivedPrefixes"), "88.123.45/x", True),
    (("0.NA/88.123", "derivedPrefixes"), "0.NA/88.123.45", True),
    (("0.NA/88.123", "derivedPrefixes"), "88.1234/x", False),
    (("0.na/88.123", "derivedPrefixes"), "88.123.45/x", True),
    (("88.123", "derivedPrefixes"), "88.123.45/x", False),
    (("0.NA/88.123.45", "handlesUnderThisPrefix"), "88.123.45/x", True),
    (("0.NA/88.123.45", "handlesUnderThisPrefix"), "88.123.45.1/x", False),
    (("0.NA/88.123.45", "handlesUnderThisPrefix"), "0.NA/88.123.45", False),
    (("88.123.45", "handlesUnderThisPrefix"), "88.123.45/x", False),
    (("88.123.45/x", "thisHandle"), "88.123.45/x", True),
    (("88.123.45/x", "thisHandle"), "88.123.45/X", False),
    (("88.123.45/x", "thisHandle"), "88.123.45/y", False),
    (("0.NA/88.123.45", "thisHandle"), "88.123.45/x", True),
    (("0.NA/88.123.45", "thisHandle"), "0.na/88.123.45", True),
    (("88.123.45", "thisHandle"), "88.123.45/x", False),
    (("0.NA/88.123", "somethingElse"), "88.123/x", False),
]

NOW = 1767225600  # the iat of every JWS above; all are valid until 1830297600
HANDLE = "88.123/VEC-1"
ISSUER = "300:0.NA/88.123"
PERMS = [("0.NA/88.123", "derivedPrefixes"), ("0.NA/88.123", "handlesUnderThisPrefix")]


def values() -> list[dict[str, object]]:
    """The three values hdllib signed, as the node stores them."""
    return [
        {
            "index": 1,
            "type": "URL",
            "data": {"format": "string", "value": "https://example.com/vec"},
            "ttl": 86400,
            "timestamp": "2026-01-01T00:00:00Z",
        },
        {
            "index": 2,
            "type": "EMAIL",
            "data": {"format": "string", "value": "vec@example.com"},
            "ttl": 3600,
            "timestamp": "2026-01-01T00:00:01Z",
        },
        {
            "index": 100,
            "type": "DESC",
            "data": {"format": "string", "value": "中文 value"},
            "ttl": 86400,
            "timestamp": "2026-01-01T00:00:02Z",
            "permissions": "1010",
        },
    ]


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    loaded = serialization.load_pem_private_key(KEY_PEM, None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    return loaded


def encoded() -> dict[int, bytes]:
    return {int(v["index"]): p.encode_value(v) for v in values()}  # type: ignore[call-overload]


def test_request_digest_is_sha256_of_the_request_body():
    """Util.doDigest(HASH_CODE_SHA256, ResolutionRequest.getEncodedMessageBody())."""
    assert hashlib.sha256(bytes.fromhex(REQUEST_BODY_HEX)).digest() == REQUEST_DIGEST


@pytest.mark.parametrize("code", sorted(MACS))
def test_seckey_mac_matches_util_do_mac(code):
    """Util.doMac (doPbkdf2HmacSHA1 with the answer's salt, 10000 iterations, 160 bits;
    doSHA1Digest / doSHA256Digest of key||data||key; doHmacSHA1 / doHmacSHA256): our
    signing.seckey_mac gives the same octets, and check_seckey_answer accepts the answer
    (code octet + MAC) that SecretKeyAuthenticationInfo.authenticate would send."""
    mac = bytes.fromhex(MACS[code])
    params = signing.parse_pbkdf2(mac)[0] if code == signing.CODE_PBKDF2_HMAC_SHA1 else None
    if params is not None:
        assert (params.salt, params.iterations, params.key_bits) == (SALT, 10000, 160)
    assert signing.seckey_mac(code, NONCE + REQUEST_DIGEST, SECRET, params) == mac
    assert signing.check_seckey_answer(SECRET, NONCE, REQUEST_DIGEST, bytes([code]) + mac)
    assert not signing.check_seckey_answer(b"vector-secret-2", NONCE, REQUEST_DIGEST, bytes([code]) + mac)


def test_hashed_secret_matches_encode_secret_key():
    """Encoder.encodeSecretKey(secret, true): lower-case hex of SHA-1, and a PBKDF2 answer keyed
    with it (what a client with the hash option sends) checks against the stored hashed octets."""
    assert signing.hashed_secret(SECRET) == HASHED_SECRET
    answer = bytes([signing.CODE_PBKDF2_HMAC_SHA1]) + bytes.fromhex(MAC_PBKDF2_HASHED)
    assert signing.check_seckey_answer(HASHED_SECRET, NONCE, REQUEST_DIGEST, answer)
    assert not signing.check_seckey_answer(SECRET, NONCE, REQUEST_DIGEST, answer)


def test_pubkey_answer_matches_public_key_authentication_info(key):
    """PublicKeyAuthenticationInfo.authenticate at 2.11: SHA256withRSA over nonce||digest, laid
    out as the hash name and the signature. Ours signs the same octets (PKCS#1 v1.5 is
    deterministic) and HandleServer.verifyIdentityAndGetIndex's check (ours) accepts hdllib's."""
    answer = bytes.fromhex(PUBKEY_ANSWER_HEX)
    assert signing.pubkey_answer(key, NONCE, REQUEST_DIGEST, (2, 11)) == answer
    assert signing.check_pubkey_answer(key.public_key(), NONCE, REQUEST_DIGEST, answer)
    assert not signing.check_pubkey_answer(key.public_key(), bytes(16), REQUEST_DIGEST, answer)


def test_public_key_octets_against_get_bytes_from_public_key(key):
    """Util.getBytesFromPublicKey for RSA sizes its buffer for four length fields
    (`INT_SIZE * 4`) but writes three (name, exponent, modulus), so its octets end in four zero
    octets that ours (signing.encode_public_key) does not write. Util.getPublicKeyFromBytes reads
    e and n and ignores what follows, so both readers take both forms (hdllib verified the
    node's certified answers with the shorter form); the octets differ only by that tail."""
    octets = bytes.fromhex(RSA_PUB_KEY_HEX)
    assert octets.endswith(bytes(4))
    assert signing.encode_public_key(key.public_key()) == octets[:-4]
    decoded = signing.decode_public_key(octets)
    assert isinstance(decoded, rsa.RSAPublicKey)
    assert decoded.public_numbers() == key.public_key().public_numbers()


def test_value_encoding_and_digests_match_handle_value_digester():
    """Encoder.encodeHandleValue and HandleValueDigester.digest(values, "SHA-256") against
    protocol.encode_value and signing.value_digest."""
    ours = encoded()
    assert {i: e.hex() for i, e in ours.items()} == ENCODED
    assert [{"index": i, "digest": signing.value_digest(ours[i])} for i in sorted(ours)] == DIGESTS["digests"]


def test_hdllib_signature_and_certificate_are_accepted_by_trust(key):
    """HandleSigner's HS_SIGNATURE and HS_CERT: trust.read_jws parses them, the signature verifies
    with the certificate's key, check_values verifies every value, and verify_chain accepts the
    chain given the key as a root (hdllib's own ChainVerifier says rootIsTrusted=false here: it
    trusts only a root whose sub is on 0.0/0.0, docs/trust-reference.md section 5)."""
    signature, cert = trust.read_jws(HDLLIB_SIGNATURE), trust.read_jws(HDLLIB_CERT)
    assert signature.claims["sub"] == HANDLE and signature.claims["iss"] == ISSUER
    assert trust.key_of(cert.claims["publicKey"]).public_numbers() == key.public_key().public_numbers()
    assert signature.verifies_with(key.public_key()) and cert.verifies_with(key.public_key())
    verdict = trust.check_values(signature.claims, encoded())
    assert verdict.holds and verdict.verified == [1, 2, 100]
    certs = {ISSUER: HDLLIB_CERT}
    assert trust.verify_chain(signature, HANDLE, certs.get, [key.public_key()], NOW) == [ISSUER]
    changed = {**encoded(), 2: p.encode_value({**values()[1], "data": {"format": "string", "value": "x@y"}})}  # type: ignore[dict-item]
    assert trust.check_values(signature.claims, changed).bad_digest == [2]


def test_our_signature_and_certificate_are_what_hdllib_accepted(key):
    """trust.signature_claims / certificate_claims / sign_jws at the same inputs give, octet for
    octet, the JWS texts that hdllib's HandleVerifier.verifyValues and ChainVerifier.verifyValues
    accepted (every link's signature verified, in date, authorized)."""
    claims = trust.signature_claims(HANDLE, encoded(), ISSUER, now=NOW)
    assert trust.sign_jws(claims, key) == OUR_SIGNATURE
    cert = trust.certificate_claims(ISSUER, ISSUER, key.public_key(), PERMS, now=NOW)
    assert trust.sign_jws(cert, key) == OUR_CERT


@pytest.mark.parametrize("perm, handle, allowed", HDLLIB_PERMITS)
def test_permits_decides_as_handle_verifier(perm, handle, allowed):
    """HandleVerifier.verifyPermissionsAreAuthorizedOverHandle (Util.equalsPrefixCI,
    isHandleUnderPrefix, isDerivedFrom, getZeroNAHandle): derivedPrefixes leaves the prefix itself
    out, thisHandle and handlesUnderThisPrefix take a 0.NA/ prefix handle, and a suffix is
    compared case-sensitively."""
    target, kind = perm
    assert trust.permits({"handle": target, "perm": kind}, handle) is allowed
