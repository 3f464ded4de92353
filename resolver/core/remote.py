"""What recursive resolution takes from outside: where it may connect, what it asks, what it believes.

Everything here is data checked before use, with no I/O:
- the HTTP query interfaces named by a prefix record's HS_SITE values (IP literals only: nothing is
  looked up in DNS, so the address checked is the address connected to), and the policy that says
  which addresses may be contacted (public ones, plus the networks the operator allows);
- the path asked, built from a parsed handle, percent-encoded, with no `.` or `..` segment;
- the answer, which must have the Handle JSON shape and values this node would accept itself; it
  is rendered again from what was checked, never passed on as received.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson

from resolver.config import Limits
from resolver.core.errors import RC, HandleError
from resolver.core.handles import HandleName, fold
from resolver.core.values import StoredValue, is_public, parse_value, ttl_seconds

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HANDLES_PATH = "/api/handles/"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# IPv6 ranges refused whatever `is_global` says: forms that carry an IPv4 address this policy does
# not unwrap (IPv4-compatible ::/96, SIIT-translated ::ffff:0:0:0/96, local-use NAT64
# 64:ff9b:1::/48 of RFC 8215) and deprecated site-local fec0::/10.
_REFUSED_V6 = tuple(
    ipaddress.IPv6Network(n) for n in ("::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "fec0::/10")
)
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", re.ASCII)
_DOT_SEGMENTS = frozenset({".", ".."})
_SEPARATORS = re.compile(r"[/\\]")
# How deep a remote value may nest (the value object is level 1): what orjson can write back
# (resolver/http/bodies.py MAX_JSON_DEPTH, 254, as for local bodies) less a margin for the levels
# the node wraps a value in when it renders it ({"values": [value]} and any filter's answer).
MAX_VALUE_DEPTH = 254 - 8


class InvalidAnswer(Exception):
    """What a node answered is not a Handle answer this node believes; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Interface:
    """An HTTP query interface of a site: where its Handle JSON API answers."""

    scheme: str
    address: IPAddress
    port: int

    @property
    def base(self) -> str:
        """`http://192.0.2.1:8000` or `https://[2001:db8::1]:443`."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Site:
    """What a prefix record says about where its handles are answered over HTTP."""

    interfaces: tuple[Interface, ...]  # usable ones, in the record's order
    unusable: int  # HTTP query interfaces with an address that is not an IP or is not allowed


def _items(document: object, key: str) -> list[Any]:
    found = document.get(key) if isinstance(document, dict) else None
    return found if isinstance(found, list) else []


def site_of(record: object, policy: AddressPolicy) -> Site:
    """The HTTP query interfaces of a prefix record's HS_SITE values.

    Whatever is malformed (a port of "abc", no port, a server that is not an object) is skipped,
    as if it were not there; an interface at an address that is not an IP literal or that the
    policy refuses is counted in `unusable`.
    """
    usable: list[Interface] = []
    unusable = 0
    for value in _items(record, "values"):
        value_type = value.get("type") if isinstance(value, dict) else None
        if not isinstance(value_type, str) or fold(value_type) != "hs_site":
            continue
        data = value.get("data")
        site = data.get("value") if isinstance(data, dict) else None
        for server in _items(site, "servers"):
            address = server.get("address") if isinstance(server, dict) else None
            for interface in _items(server, "interfaces"):
                if not isinstance(interface, dict) or interface.get("query") is not True:
                    continue
                protocol = interface.get("protocol")
                port = interface.get("port")
                if not isinstance(protocol, str) or fold(protocol) not in ("http", "https"):
                    continue
                if type(port) is not int or not 0 < port < 65536:
                    continue
                ip = _ip(address)
                if ip is None or not policy.permits(ip):
                    unusable += 1
                    continue
                usable.append(Interface(fold(protocol), ip, port))
    return Site(tuple(usable), unusable)


def _ip(address: object) -> IPAddress | None:
    if not isinstance(address, str) or len(address) > 64:
        return None
    try:
        return ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return None


def record_ttl(record: object) -> float | None:
    """The smallest relative TTL of a prefix record's values (None when none has one)."""
    ttls = [
        float(value["ttl"])
        for value in _items(record, "values")
        if isinstance(value, dict) and type(value.get("ttl")) in (int, float)
    ]
    return min(ttls) if ttls else None


class AddressPolicy:
    """Which addresses recursion may connect to: global unicast ones, and the allowed networks.

    Refused unless allowed: loopback, private (RFC 1918, unique local), link-local (cloud metadata
    services live there), shared (100.64/10), unspecified (0.0.0.0 reaches this host), multicast,
    broadcast, documentation and reserved ranges, and IPv6 forms that carry such an IPv4 address
    (IPv4-mapped, 6to4, NAT64); and always (unless allowed) IPv4-compatible, SIIT-translated,
    local-use NAT64 and site-local IPv6 addresses.
    """

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in allowed)

    def permits(self, address: IPAddress) -> bool:
        """True when recursion may connect to `address`."""
        forms = [address, *_embedded(address)]
        if any(form in network for form in forms for network in self.allowed):
            return True
        if isinstance(address, ipaddress.IPv6Address) and any(address in n for n in _REFUSED_V6):
            return False
        return all(form.is_global and not form.is_multicast for form in forms)


def _embedded(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address stands for (IPv4-mapped, 6to4, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def handle_path(name: HandleName) -> str:
    """`/api/handles/<prefix>/<suffix>` for `name`, percent-encoded.

    `/` inside the suffix stays a separator, as Handle.Net clients send it; a `.` or `..` segment
    (with `/` or `\\` around it) is refused, since a server or proxy on the way would resolve it
    to another path than the handle's.
    """
    prefix, _, suffix = name.text.partition("/")
    if any(segment in _DOT_SEGMENTS for segment in _SEPARATORS.split(suffix)):
        raise HandleError(
            RC.INVALID_HANDLE,
            "recursive resolution does not pass on a handle with a '.' or '..' path segment",
            zh="递归解析不转发含有 '.' 或 '..' 路径段的标识",
        )
    return HANDLES_PATH + quote(prefix, safe="") + "/" + quote(suffix, safe="/")


# -- answers ---------------------------------------------------------------------------------------


def parse_answer(status: int, body: bytes, name: HandleName, limits: Limits) -> list[StoredValue] | None:
    """The public values of a node's answer for `name`; None when the node does not have it.

    A 200 must be a Handle JSON object for this handle whose values are each valid as this node
    validates values written to it (index, type, data of its format, size, TTL); a 404 must say
    responseCode 100. Anything else raises InvalidAnswer.
    """
    if status not in (200, 404):
        raise InvalidAnswer(f"answered HTTP {status}")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidAnswer("answered something that is not JSON") from None
    if not isinstance(document, dict):
        raise InvalidAnswer("answered JSON that is not a Handle answer")
    rc = document.get("responseCode")
    if status == 404:
        if type(rc) is int and rc == RC.HANDLE_NOT_FOUND:
            return None
        raise InvalidAnswer("answered HTTP 404 without a Handle answer")
    if type(rc) is not int or rc not in (RC.SUCCESS, RC.VALUES_NOT_FOUND):
        raise InvalidAnswer("answered JSON that is not a Handle answer")
    handle = document.get("handle")
    if handle is not None and (not isinstance(handle, str) or fold(handle) != name.key):
        raise InvalidAnswer("answered for another handle")
    raw_values = document.get("values")
    if not isinstance(raw_values, list):
        raise InvalidAnswer("answered JSON that is not a Handle answer")
    return checked_values(raw_values, limits)


def checked_values(raw_values: Sequence[object], limits: Limits) -> list[StoredValue]:
    """Values of another node, checked as values written here are; only the public ones kept."""
    if len(raw_values) > limits.max_values_per_handle:
        raise InvalidAnswer(f"answered more than {limits.max_values_per_handle} values")
    now = datetime.now(UTC)
    values: list[StoredValue] = []
    seen: set[int] = set()
    for raw in raw_values:
        if _too_deep(raw, MAX_VALUE_DEPTH):
            raise InvalidAnswer("answered values that are not valid Handle values")
        try:
            value = parse_value(raw, limits, now)
        except HandleError:
            raise InvalidAnswer("answered values that are not valid Handle values") from None
        if value["index"] in seen:
            raise InvalidAnswer("answered two values with the same index")
        seen.add(value["index"])
        stamp = raw.get("timestamp") if isinstance(raw, dict) else None
        if isinstance(stamp, str) and _TIMESTAMP.fullmatch(stamp):
            value["timestamp"] = stamp  # the other node's, not the time this node read it
        else:
            value.pop("timestamp", None)
        if is_public(value):
            values.append(value)
    return values


def _too_deep(document: object, limit: int) -> bool:
    """True when `document` nests lists and objects more than `limit` levels deep."""
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if type(node) is dict else node if type(node) is list else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return False


def values_ttl(values: Sequence[StoredValue], now: float) -> float | None:
    """The smallest TTL of `values` in seconds from `now` (a Unix time); None without values."""
    return min((ttl_seconds(v["ttl"], now) for v in values), default=None)
