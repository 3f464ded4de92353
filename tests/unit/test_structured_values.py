"""Structured value data (HS_SITE, HS_ADMIN, HS_VLIST, keys) is checked on write, and the rule is:
whatever is accepted can be encoded by the native protocol's encoder.

The property tests generate data near the edges of each format (wrong types, numbers just past
their field's width, host names for addresses, unknown transports) and check that either the
validation refuses it (rc 202) or `resolver.native.protocol.encode_value` writes it; accepted sites
are then read back by the test client's independent decoder (tests/handle_client.py). Stored data
that was never checked (written before this rule) fails to encode with EncodingError only, which
the native server answers as an error (tests/integration/test_native.py).
"""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from resolver.config import Limits
from resolver.core import structured
from resolver.core.errors import RC, HandleError
from resolver.core.values import parse_value
from resolver.native import protocol as p
from tests.handle_client import read_site
from tests.helpers import examples

LIMITS = Limits()
NOW = datetime(2026, 11, 21, 8, 0, 0, tzinfo=UTC)

json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=8,
)


def edgy_integers(high: int) -> st.SearchStrategy[object]:
    """Integers inside and just outside 0..high, and things that are not integers."""
    return valid_or(
        st.integers(0, high),
        st.one_of(
            st.sampled_from([-1, high, high + 1, 2**31, 2**32, 2**63]),
            st.booleans(),
            st.text(alphabet="0123456789x", max_size=6),
            st.floats(allow_nan=False, max_value=1e6, min_value=-1e6),
            st.none(),
        ),
    )


def maybe(values: dict[str, st.SearchStrategy[object]]) -> st.SearchStrategy[dict[str, object]]:
    """Objects with all the given fields, or any subset of them."""
    return st.fixed_dictionaries(values) | st.fixed_dictionaries({}, optional=values)


def valid_or(valid: st.SearchStrategy[object], edgy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Mostly valid data (so that the encoder gets to work), sometimes edgy."""
    return st.integers(0, 7).flatmap(lambda n: edgy if n == 0 else valid)


addresses = valid_or(
    st.ip_addresses().map(str),
    st.sampled_from(["localhost", "resolver.example.cn", "", "1.2.3", "::g", "300.1.1.1"]) | json_scalars,
)
public_keys = st.one_of(
    st.none(),
    maybe(
        {
            "format": st.sampled_from(["key", "base64", "hex", "HEX", "pem", 5]),
            "value": st.one_of(
                st.none(),
                st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()),
                st.binary(max_size=12).map(bytes.hex),
                st.text(max_size=8),
            ),
        }
    ),
    json_scalars,
)
interfaces = valid_or(
    maybe(
        {
            "query": valid_or(st.booleans(), json_scalars),
            "admin": valid_or(st.booleans(), json_scalars),
            "protocol": valid_or(
                st.sampled_from(["UDP", "TCP", "http", "HTTPS"]), st.sampled_from(["QUIC", "", 1])
            ),
            "port": edgy_integers(65535),
        }
    ),
    json_values,
)
servers = st.one_of(
    maybe(
        {
            "serverId": edgy_integers(2**31 - 1),
            "address": addresses,
            "publicKey": public_keys,
            "interfaces": valid_or(st.lists(interfaces, max_size=3), json_scalars),
        }
    ),
    maybe({"address": st.ip_addresses().map(str)}),
    st.sampled_from(["junk", 1, None, []]),
)
attributes = valid_or(
    maybe(
        {
            "name": valid_or(st.text(max_size=8), json_scalars),
            "value": valid_or(st.text(max_size=8), json_scalars),
        }
    ),
    json_scalars,
)
sites = valid_or(
    maybe(
        {
            "version": edgy_integers(65535),
            "protocolVersion": valid_or(
                st.sampled_from(["2.11", "2", "2.10", "255.255"]),
                st.sampled_from(["2.256", "256.1", "2.x", "", 2.1, None]),
            ),
            "serialNumber": edgy_integers(65535),
            "primaryMask": valid_or(
                maybe({"primary": valid_or(st.booleans(), json_scalars), "multiPrimary": st.booleans()}),
                json_scalars,
            ),
            "primarySite": valid_or(st.booleans(), json_scalars),
            "multiPrimary": valid_or(st.booleans(), json_scalars),
            "hashOption": edgy_integers(255),
            "hashFilter": valid_or(st.text(max_size=8), json_scalars),
            "attributes": valid_or(st.lists(attributes, max_size=3), json_scalars),
            "servers": valid_or(st.lists(servers, max_size=3), json_scalars),
        }
    ),
    json_values,
)
references = valid_or(
    maybe(
        {
            "handle": valid_or(
                st.from_regex(r"[0-9A-Za-z./_-]{1,30}", fullmatch=True),
                st.text(max_size=20) | st.sampled_from(["", "x" * 300]) | json_scalars,
            ),
            "index": edgy_integers(2**31 - 1),
        }
    ),
    json_scalars,
)
admins = valid_or(
    st.builds(
        lambda ref, perms: {**ref, "permissions": perms} if isinstance(ref, dict) else ref,
        references,
        valid_or(
            st.text(alphabet="01", max_size=12)
            | st.sampled_from(["*", True, False, None])
            | st.integers(0, 0xFFF)
            | st.lists(st.booleans() | st.sampled_from([0, 1]), max_size=12),
            st.sampled_from(["2", "0" * 13, "**", 4096, -1, 1.5, [True] * 13, ["1"], {"add": True}]),
        ),
    ),
    json_values,
)
vlists = st.lists(references, max_size=4) | json_values
keys = st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()) | json_values


def accepted(value_type: str, data: dict[str, object]) -> dict[str, object] | None:
    """The stored form of a value with this data, or None when validation refuses it (rc 202)."""
    try:
        return parse_value({"index": 5, "type": value_type, "data": data}, LIMITS, NOW)
    except HandleError as exc:
        assert exc.rc == RC.INVALID_VALUE, exc
        return None


SETTINGS = settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(site=sites)
@example(site={"servers": ["junk"]})
@example(site={"version": 70000})
@example(site={"primaryMask": "x"})
@example(site={"servers": [{"address": "127.0.0.1", "interfaces": [{"protocol": "TCP", "port": 70000}]}]})
def test_an_accepted_site_has_a_binary_form_the_client_can_read(site):
    stored = accepted("HS_SITE", {"format": "site", "value": site})
    if stored is None:
        return
    encoded = p.encode_value(stored)
    assert encoded
    record = read_site(p.value_data(stored["data"]))  # asserts it reads every octet
    assert isinstance(site, dict) and len(record["servers"]) == len(site.get("servers", []))


@SETTINGS
@given(admin=admins)
def test_an_accepted_admin_value_has_a_binary_form(admin):
    stored = accepted("HS_ADMIN", {"format": "admin", "value": admin})
    if stored is None:
        return
    data = p.value_data(stored["data"])
    assert p.encode_value(stored)
    handle = stored["data"]["value"]["handle"].encode()
    (mask,) = struct.unpack(">H", data[:2])
    assert mask < 0x1000 and data[2:] == struct.pack(">I", len(handle)) + handle + data[-4:]


@SETTINGS
@given(vlist=vlists)
def test_an_accepted_vlist_has_a_binary_form(vlist):
    stored = accepted("HS_VLIST", {"format": "vlist", "value": vlist})
    if stored is None:
        return
    data = p.value_data(stored["data"])
    assert p.encode_value(stored) and struct.unpack(">I", data[:4])[0] == len(vlist)


@SETTINGS
@given(key=keys)
def test_an_accepted_key_has_a_binary_form(key):
    stored = accepted("HS_PUBKEY", {"format": "key", "value": key})
    if stored is not None:
        assert p.value_data(stored["data"]) == base64.b64decode(key) and p.encode_value(stored)


@SETTINGS
@given(
    fmt=st.sampled_from(["string", "base64", "hex", "admin", "vlist", "site", "key", "custom"]),
    value=json_values | sites | admins | vlists,
)
def test_stored_data_never_checked_fails_to_encode_only_with_encoding_error(fmt, value):
    """Values stored before the check (or by hand) either encode or raise EncodingError, which
    the native server turns into an answer; never another exception that would drop it."""
    stored = {"index": 7, "type": "HS_SITE", "data": {"format": fmt, "value": value}, "ttl": 86400}
    try:
        p.encode_value(stored)
    except p.EncodingError as exc:
        assert str(exc).startswith("value 7")


@pytest.mark.parametrize(
    ("site", "where"),
    [
        ({"servers": ["junk"]}, "servers[0] must be an object"),
        ({"version": 70000}, "version must be an integer from 0 to 65535"),
        ({"primaryMask": "x"}, "primaryMask must be an object"),
        (
            {"servers": [{"address": "127.0.0.1", "interfaces": [{"protocol": "TCP", "port": 65536}]}]},
            "servers[0].interfaces[0].port must be an integer from 0 to 65535",
        ),
        ({"servers": [{"address": "resolver.example.cn"}]}, "servers[0].address must be an IPv4 or IPv6"),
        ({"servers": [{"address": "::1", "interfaces": [{"protocol": "QUIC", "port": 1}]}]}, "protocol"),
        ({"protocolVersion": "2.256"}, "protocolVersion"),
        ({"attributes": {"desc": "x"}}, "attributes must be a list"),
    ],
)
def test_malformed_sites_are_refused_saying_where(site, where):
    with pytest.raises(HandleError) as refused:
        parse_value({"index": 5, "type": "HS_SITE", "data": {"format": "site", "value": site}}, LIMITS, NOW)
    assert refused.value.rc == RC.INVALID_VALUE and where in refused.value.message
    assert "HS_SITE" in refused.value.message or "value 5" in refused.value.message


def test_the_node_s_own_site_record_and_the_reference_form_are_accepted():
    from resolver.config import Config
    from resolver.upstream.site import site_record

    own = site_record(Config(public_url="http://127.0.0.1:8000", native_port=2641))
    reference_form = {
        "version": 1,
        "protocolVersion": "2.10",
        "serialNumber": 3,
        "primarySite": True,
        "multiPrimary": False,
        "attributes": [{"name": "desc", "value": "a site"}],
        "servers": [
            {
                "serverId": 1,
                "address": "2001:db8::1",
                "publicKey": {"format": "base64", "value": base64.b64encode(b"key").decode()},
                "interfaces": [{"query": True, "admin": False, "protocol": "UDP", "port": 2641}],
            }
        ],
    }
    for site in (own, reference_form):
        stored = accepted("HS_SITE", {"format": "site", "value": site})
        assert stored is not None and stored["data"]["value"] == site
    record = read_site(p.encode_site(reference_form))
    assert record["primary"] and record["protocol"] == (2, 10)
    assert record["servers"][0]["interfaces"] == [(2, 0, 2641)]


def test_admin_values_are_normalised_and_references_named():
    stored = accepted(
        "HS_ADMIN",
        {"format": "admin", "value": {"handle": "0.NA/88.123", "index": "200", "permissions": "0111"}},
    )
    assert stored is not None
    assert stored["data"]["value"] == {"handle": "0.NA/88.123", "index": 200, "permissions": "000000000111"}
    with pytest.raises(HandleError, match=r"vlist\[1\]\.handle"):
        parse_value(
            {"index": 5, "type": "HS_VLIST", "data": {"format": "vlist", "value": [{"handle": "a/b"}, {}]}},
            LIMITS,
            NOW,
        )


def test_structured_formats_are_the_ones_the_encoder_reads_from_json():
    assert frozenset({"admin", "vlist", "site", "key"}) == structured.STRUCTURED_FORMATS


@pytest.mark.parametrize("index", ["\x1e5", "\u0665", "5\x1c"])
def test_a_reference_index_of_look_alike_digits_is_refused_not_a_crash(index):
    """`\\s` and `\\d` of a Unicode pattern admit what int() refuses (U+001C..U+001F) or reads in
    another script: a reference index is ASCII digits (see test_values' integer test)."""
    with pytest.raises(structured.InvalidStructure):
        structured.reference({"handle": "0.NA/88.123", "index": index}, "references[0]", Limits())
