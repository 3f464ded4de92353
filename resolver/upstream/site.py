"""This node's site record: where and how its identifiers are resolved.

One description, three uses: the HS_SITE value sent to the top-level node, `resolver siteinfo`
(the `siteinfo.json` a Handle client can be pointed at), and the native GET_SITE_INFO answer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from resolver.config import Config

SITE_SERIAL = 1
PROTOCOL_VERSION = "2.11"


def site_record(config: Config) -> dict[str, Any]:
    """The site in the Handle JSON form (`siteinfo.json`, the data of an HS_SITE value)."""
    public = urlsplit(config.public_base)
    http_port = public.port or (443 if public.scheme == "https" else 80)
    interfaces: list[dict[str, Any]] = []
    if config.native_port:
        interfaces += [
            {"query": True, "admin": False, "protocol": "TCP", "port": config.native_port},
            {"query": True, "admin": False, "protocol": "UDP", "port": config.native_port},
        ]
    interfaces.append({"query": True, "admin": True, "protocol": public.scheme.upper(), "port": http_port})
    return {
        "version": 1,
        "protocolVersion": PROTOCOL_VERSION,
        "serialNumber": SITE_SERIAL,
        "primaryMask": {"multiPrimary": False, "primary": True},
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
                "publicKey": {"format": "key", "value": None},
                "interfaces": interfaces,
            }
        ],
    }


def site_value(config: Config) -> dict[str, Any]:
    """The HS_SITE value (index 1) of this node's prefix records."""
    return {
        "index": 1,
        "type": "HS_SITE",
        "data": {"format": "site", "value": site_record(config)},
        "ttl": 86400,
    }
