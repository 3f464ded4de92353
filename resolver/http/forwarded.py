"""Behind a load balancer: what `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` say,
believed only from the networks of `--trusted-proxies`.

When the TCP peer is a trusted proxy, the client is the rightmost address of `X-Forwarded-For`
that is not itself a trusted proxy (each proxy appends the address it received from; everything
left of the first untrusted one could have been written by the client). The scheme and host it
forwards give the address clients reached the node at, for links and QR codes when --public-url
is not set (`link_base`). From any other peer, or with no trusted proxies, all three are ignored:
the client is the peer, links use Config.public_base.

A host is only believed as a host name or address with an optional port; the page it appears on is
never kept in the worker's cache (resolver/http/proxy.py), since a proxy passes on whatever Host a
client sent it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import NamedTuple

from aiohttp import web

from resolver.config import Config

# the base of links (scheme://host[:port]) a trusted proxy forwarded for this request
FORWARDED_BASE = web.RequestKey("forwarded_base", str)
_HOST = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.?)+(?::[0-9]{1,5})?|\[[0-9a-f:.]{2,45}\](?::[0-9]{1,5})?"
)
_MAX_HOPS = 32  # X-Forwarded-For entries looked at, from the right
_MEMO_SIZE = 4096

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Forwarded(NamedTuple):
    """What a trusted proxy said of a request: the client's address and the base of links."""

    client: str
    base: str | None


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: bare, `[v6]`, `v4:port`, `[v6]:port` (None if not one)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The networks whose forwarded headers are believed."""

    def __init__(self, networks: Sequence[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self._peers: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def _inside(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def trusts(self, peer: str) -> bool:
        """True when the TCP peer `peer` (as the transport names it) is a trusted proxy."""
        known = self._peers.get(peer)
        if known is None:
            address = parse_address(peer)
            known = address is not None and self._inside(address)
            if len(self._peers) >= _MEMO_SIZE:
                self._peers.clear()
            self._peers[peer] = known
        return known

    def client(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client of a request from the trusted proxy `peer`: the rightmost address of the
        X-Forwarded-For values that is not a trusted proxy. An entry that is not an address ends
        the walk at the last trusted hop (the proxy that wrote it cannot say who the client is)."""
        hops = [hop for value in forwarded_for for hop in value.split(",")]
        client = peer
        for hop in reversed(hops[-_MAX_HOPS:]):
            address = parse_address(hop)
            if address is None:
                break
            client = str(address)
            if not self._inside(address):
                break
        return client

    def view(self, request: web.BaseRequest) -> Forwarded | None:
        """What the request's proxy forwarded, when its peer is trusted; None otherwise."""
        peer = request.remote or ""
        if not self.trusts(peer):
            return None
        headers = request.headers
        client = self.client(peer, headers.getall("X-Forwarded-For", ()))
        proto = _last(headers.get("X-Forwarded-Proto"))
        host = _last(headers.get("X-Forwarded-Host"))
        if proto is None and host is None:
            return Forwarded(client, None)
        scheme = proto.lower() if proto is not None and proto.lower() in ("http", "https") else None
        host = host.lower() if host is not None and _HOST.fullmatch(host.lower()) else None
        if host is None:  # the proxy passed the client's Host on; believe it no more than the header
            own = request.headers.get("Host", "").strip().lower()
            host = own if own and _HOST.fullmatch(own) else None
        if host is None or (scheme is None and proto is not None):
            return Forwarded(client, None)
        return Forwarded(client, f"{scheme or request.scheme}://{host}")


def _last(value: str | None) -> str | None:
    """The rightmost entry of a comma-separated forwarded header (the one the nearest proxy set)."""
    if value is None:
        return None
    last = value.rpartition(",")[2].strip()
    return last or None


def apply(request: web.Request, proxies: TrustedProxies) -> web.Request:
    """The request as its trusted proxy describes it (client address), or itself."""
    seen = proxies.view(request)
    if seen is None:
        return request
    if seen.client != request.remote:
        request = request.clone(remote=seen.client)
    if seen.base is not None:
        request[FORWARDED_BASE] = seen.base
    return request


def link_base(config: Config, request: web.Request | None) -> str:
    """The scheme and host of this node's links and QR codes: --public-url when it is set, else
    what a trusted proxy forwarded for `request`, else http://HOST:PORT."""
    if config.public_url or request is None:
        return config.public_base
    return request.get(FORWARDED_BASE) or config.public_base
