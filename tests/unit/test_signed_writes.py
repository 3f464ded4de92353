"""What the write paths of signed and unsigned prefixes keep of a record's signatures
(resolver/services/signed_writes.py own_values, node_issued), without a database or keys."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from resolver.config import Limits
from resolver.core.errors import HandleError
from resolver.core.handles import parse_handle
from resolver.services.signed_writes import node_issued, own_values
from resolver.store.rows import PrefixInfo

NAME = parse_handle("88.123.45/P-1", Limits())


def jws(issuer: str) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'iss': issuer, 'sub': '88.123.45/P-1'})}.c2ln"


def value(index: int, value_type: str, data: str) -> dict:
    return {"index": index, "type": value_type, "data": {"format": "string", "value": data}}


URL = value(1, "URL", "https://example.com")
NODE_SIG = value(400, "HS_SIGNATURE", jws("301:0.NA/88.123.45"))
COPIED_NODE_SIG = value(5, "HS_SIGNATURE", jws("302:0.NA/88.123.45"))
OWN_SIG = value(400, "HS_SIGNATURE", jws("500:0.NA/88.123.45"))  # the enterprise's own key
REGISTRY = SimpleNamespace(signing=None)


def owner(signed: bool) -> PrefixInfo:
    return PrefixInfo("88.123.45", 1, 45, signed)


def test_node_issued_is_told_by_the_issuer_alone() -> None:
    assert node_issued(NODE_SIG, "88.123.45") and node_issued(COPIED_NODE_SIG, "88.123.45")
    assert not node_issued(OWN_SIG, "88.123.45")  # 500-599: an enterprise key
    assert not node_issued(NODE_SIG, "88.123.46")  # another prefix's
    assert not node_issued(value(400, "HS_SIGNATURE", "not a jws"), "88.123.45")
    assert not node_issued(value(400, "URL", jws("301:0.NA/88.123.45")), "88.123.45")


def test_a_signed_prefix_owns_index_400_and_every_node_signature() -> None:
    kept = own_values(REGISTRY, owner(True), NAME, [URL, NODE_SIG, COPIED_NODE_SIG], supplied=True)
    assert kept == [URL]
    assert own_values(REGISTRY, owner(True), NAME, [URL, OWN_SIG], supplied=True) == [URL]
    with pytest.raises(HandleError, match="400"):
        own_values(REGISTRY, owner(True), NAME, [URL, value(400, "URL", "x")], supplied=True)
    # stored before signing: kept here, so that the write is refused (finish_many), not the value lost
    stored = [URL, value(400, "URL", "x")]
    assert own_values(REGISTRY, owner(True), NAME, stored, supplied=False) == stored


def test_an_unsigned_prefix_keeps_the_enterprises_signature_and_drops_the_nodes() -> None:
    assert own_values(REGISTRY, owner(False), NAME, [URL, OWN_SIG, COPIED_NODE_SIG], supplied=True) == [
        URL,
        OWN_SIG,
    ]
    assert own_values(REGISTRY, None, NAME, [URL, NODE_SIG], supplied=True) == [
        URL,
        NODE_SIG,
    ]  # no enterprise
