"""This node's site record: where and how its identifiers are resolved.

One description, three uses: the HS_SITE value sent to the top-level node, `resolver siteinfo`
(the `siteinfo.json` a Handle client can be pointed at), and the native GET_SITE_INFO answer.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

from resolver.config import Config

SITE_SERIAL = 1
PROTOCOL_VERSION = "2.11"


def server_public_key(key: bytes) -> dict[str, str]:
    """A server's `publicKey` as the reference writes it when it is not a key object: the key's
    octets (the Handle encoding of a public key, or none yet) as base64 (hdllib `GsonUtility`,
    `ServerInfoGsonTypeAdapter.serialize` falls back to `serializeBinary`). hdllib reads it back with
    `deserializeData`: `{"format": "base64", "value": ""}` is an empty key, while a `"key"` format
    with a null value fails with "Unable to deserialize public key"."""
    return {"format": "base64", "value": base64.b64encode(key).decode("ascii")}


def site_record(config: Config, public_key: bytes = b"") -> dict[str, Any]:
    """The site in the Handle JSON form (`siteinfo.json`, the data of an HS_SITE value), in the
    shape hdllib's `GsonUtility.SiteInfoGsonTypeAdapter` writes and reads. `public_key`: the
    server's key octets (none until the node has a key pair).

    TCP and HTTP answer queries and administration (resolver/native/admin.py: challenge-response);
    the HTTP one takes native messages POSTed to the HTTP port (`resolver.http.native_http`). UDP
    answers queries only: an admin request there is told to use TCP."""
    public = urlsplit(config.public_base)
    http_port = public.port or (443 if public.scheme == "https" else 80)
    interfaces: list[dict[str, Any]] = []
    if config.native_port:
        interfaces += [
            {"query": True, "admin": True, "protocol": "TCP", "port": config.native_port},
            {"query": True, "admin": False, "protocol": "UDP", "port": config.native_port},
        ]
    interfaces.append({"query": True, "admin": True, "protocol": public.scheme.upper(), "port": http_port})
    return {
        "version": 1,
        "protocolVersion": PROTOCOL_VERSION,
        "serialNumber": SITE_SERIAL,
        "primarySite": True,
        "multiPrimary": False,
        "hashOption": 0,
        "hashFilter": "",
        "attributes": [
            {"name": "desc", "value": f"secondary node {config.node_prefix}"},
            {"name": "node", "value": config.node_prefix},
        ],
        "servers": [
            {
                "serverId": 1,
                "address": public.hostname or "127.0.0.1",
                "publicKey": server_public_key(public_key),
                "interfaces": interfaces,
            }
        ],
    }


def site_value(config: Config, public_key: bytes = b"") -> dict[str, Any]:
    """The HS_SITE value (index 1) of this node's prefix records."""
    return {
        "index": 1,
        "type": "HS_SITE",
        "data": {"format": "site", "value": site_record(config, public_key)},
        "ttl": 86400,
    }


PUBKEY_INDEX = 300  # the first HS_PUBKEY of a prefix record, as Handle.Net's prefix records use


def pubkey_values(keys: list[bytes]) -> list[dict[str, Any]]:
    """HS_PUBKEY values (from index 300) of the node's published keys, each its Handle encoding."""
    return [
        {
            "index": PUBKEY_INDEX + n,
            "type": "HS_PUBKEY",
            "data": {"format": "base64", "value": base64.b64encode(octets).decode("ascii")},
            "ttl": 86400,
        }
        for n, octets in enumerate(keys)
    ]
