"""The node's site record (resolver/upstream/site.py) as CNRI's hdllib loads it.

`gson_load_site` below reads a site record's JSON the way the reference reads `siteinfo.json` and the
data of an HS_SITE value: MistraR/handle `src/main/java/net/handle/hdllib/GsonUtility.java`,
`SiteInfoGsonTypeAdapter.deserialize`, `ServerInfoGsonTypeAdapter.deserialize`,
`InterfaceGsonTypeAdapter.deserialize` and `deserializeData`. Where the reference throws, it raises
`GsonRefused` with the reference's message.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from typing import Any

import pytest

from resolver.config import Config
from resolver.native import protocol as p
from resolver.upstream.site import server_public_key, site_record
from tests.handle_client import read_site

ST_QUERY, ST_ADMIN_AND_QUERY, ST_ADMIN, ST_OUT_OF_SERVICE = 2, 3, 1, 0  # hdllib Interface.ST_*
SP_UDP, SP_TCP, SP_HTTP, SP_HTTPS = 0, 1, 2, 3  # hdllib Interface.SP_HDL_*


class GsonRefused(Exception):
    """hdllib would throw here (JsonParseException / ParseException)."""


def gson_key_bytes(data: Any) -> bytes:
    """`GsonUtility.deserializeData` for a server's publicKey: a primitive is a string; otherwise
    `format` picks string/base64/hex, or `key` (a public key object, which must deserialize to a key:
    a null value gives `Util.getBytesFromPublicKey(null)` -> "Unable to deserialize public key")."""
    if not isinstance(data, dict):
        return str(data).encode("utf-8")
    fmt, value = str(data["format"]).lower(), data.get("value")
    if fmt in ("string", "base64", "hex") and not isinstance(value, str):
        raise GsonRefused(f"{fmt} value is not a string")  # JsonElement.getAsString on null/object
    if fmt == "string":
        return value.encode("utf-8")
    if fmt == "base64":
        return base64.b64decode(value)
    if fmt == "hex":
        return bytes.fromhex(value)
    if fmt == "key":
        if not isinstance(value, dict):
            raise GsonRefused("Unable to deserialize public key")
        raise GsonRefused("a key object: not exercised by these tests")
    raise GsonRefused(f"Unexpected type {data['format']}")


def gson_load_site(raw: str) -> dict[str, Any]:
    """`SiteInfoGsonTypeAdapter.deserialize`: the fields hdllib keeps (defaults as `SiteInfo`'s:
    isPrimary false, hashOption HASH_TYPE_BY_ALL = 2)."""
    obj = json.loads(raw)
    site: dict[str, Any] = {"isPrimary": False, "multiPrimary": False, "hashOption": 2}
    if "protocolVersion" in obj:
        major, _, minor = obj["protocolVersion"].partition(".")
        site["protocol"] = (int(major), int(minor))
    if "primarySite" in obj:
        site["isPrimary"] = bool(obj["primarySite"])
    if "multiPrimary" in obj:
        site["multiPrimary"] = bool(obj["multiPrimary"])
    if "hashOption" in obj:
        site["hashOption"] = int(obj["hashOption"])
    servers = obj.get("servers", obj.get("serverList"))
    if not isinstance(servers, list):
        raise GsonRefused("servers is not an array")
    site["servers"] = []
    for server in servers:
        interfaces = []
        for interface in server.get("interfaces", server.get("interfaceList")):
            query, admin = interface["query"], interface["admin"]
            if not isinstance(query, bool) or not isinstance(admin, bool):
                raise GsonRefused("query/admin are not booleans")
            kind = (
                (ST_ADMIN_AND_QUERY if admin else ST_QUERY)
                if query
                else (ST_ADMIN if admin else ST_OUT_OF_SERVICE)
            )
            protocol = {"UDP": SP_UDP, "TCP": SP_TCP, "HTTP": SP_HTTP, "HTTPS": SP_HTTPS}[
                interface["protocol"]
            ]
            interfaces.append((kind, protocol, int(interface["port"])))
        site["servers"].append(
            {
                "serverId": int(server["serverId"]),
                "address": server["address"],
                "publicKey": gson_key_bytes(server["publicKey"]),
                "interfaces": interfaces,
            }
        )
    return site


CONFIG = Config(public_url="http://127.0.0.1:8000", native_port=2641)


def test_the_old_key_form_is_what_hdllib_refused():
    """GsonUtility.deserializeData, format "key": a null value is "Unable to deserialize public key"
    (the issue's symptom); the loader above reproduces it."""
    with pytest.raises(GsonRefused, match="Unable to deserialize public key"):
        gson_key_bytes({"format": "key", "value": None})


def test_the_site_record_loads_in_hdllib_with_an_empty_key():
    """GsonUtility.SiteInfoGsonTypeAdapter.deserialize / ServerInfoGsonTypeAdapter.deserialize: the
    node's record loads, is a primary site (`primarySite`, not an object the reference ignores) and
    its server's key is empty, the form ServerInfoGsonTypeAdapter.serialize writes for a key that is
    not one (`serializeBinary`: base64)."""
    site = gson_load_site(json.dumps(site_record(CONFIG)))
    assert site["isPrimary"] is True and site["multiPrimary"] is False
    assert site["protocol"] == (2, 11)
    (server,) = site["servers"]
    assert server["publicKey"] == b"" and server["serverId"] == 1
    assert ipaddress.ip_address(server["address"]) == ipaddress.ip_address("127.0.0.1")
    # TCP takes administration too (resolver/native/admin.py), UDP queries only
    assert {(kind, protocol) for kind, protocol, _port in server["interfaces"]} >= {
        (ST_ADMIN_AND_QUERY, SP_TCP),
        (ST_QUERY, SP_UDP),
    }


def test_a_key_given_is_written_for_hdllib_and_the_binary_form_alike():
    """A node's key pair (issue 17) goes in the same field: GsonUtility.deserializeData reads the
    base64 octets back, and the binary site record (Encoder.encodeSiteInfoRecord's layout, written by
    protocol.encode_site) carries the same octets."""
    key = b"\x00\x00\x00\x06DSA_PUB_KEY-test-octets"
    record = site_record(CONFIG, public_key=key)
    assert record["servers"][0]["publicKey"] == server_public_key(key)
    assert gson_load_site(json.dumps(record))["servers"][0]["publicKey"] == key
    assert read_site(p.encode_site(record))["servers"][0]["key"] == key


def test_the_binary_site_record_is_primary_with_an_empty_key():
    """Encoder.encodeSiteInfoRecord / decodeSiteInfoRecord: the GET_SITE_INFO answer's record says
    primary (PRIMARY_SITE 0x80) and carries a zero-length key."""
    record = read_site(p.encode_site(site_record(CONFIG)))
    assert record["primary"] and not record["multi_primary"]
    assert record["servers"][0]["key"] == b""
