"""What keeps the node from being a UDP reflector: the amplification bound and response rate limiting.

A UDP request's source address can be forged, so whatever the node sends back over UDP may land on a
victim. Two bounds, as DNS servers have them:

- an answer is at most UDP_MAX_AMPLIFICATION times the request's octets and UDP_MAX_ANSWER_PACKETS
  packets (`budget`); a larger one is replaced by the short USE_TCP error (DNS's truncation). The
  reference client (CNRI Handle.Net, `HandleResolver.sendRequestToInterface`) takes RC_ERROR as a
  failed interface and asks again over its next protocol, TCP, where the whole answer comes;
- each client network (/24 for IPv4, /56 for IPv6: what one site usually holds) gets `rate` answers
  a second, `burst` at once (BIND's RRL); past that, every `slip`-th request gets the USE_TCP error
  and the others nothing. Each worker enforces its share of the rate, as the HTTP limits do.

TCP needs neither: its handshake proves the address.
"""

from __future__ import annotations

import enum
import ipaddress

from resolver.native.protocol import UDP_PACKET_SIZE

UDP_MAX_AMPLIFICATION = 3
UDP_MAX_ANSWER_PACKETS = 4
USE_TCP = "answer too large for UDP; use TCP"

_MAX_NETWORKS = 100_000


def budget(request_size: int) -> int:
    """The most octets the UDP packets answering a datagram of `request_size` octets may take."""
    return min(UDP_MAX_AMPLIFICATION * request_size, UDP_MAX_ANSWER_PACKETS * UDP_PACKET_SIZE)


class Verdict(enum.Enum):
    ANSWER = "answer"
    SLIP = "slip"  # the short "use TCP" error instead of the answer
    DROP = "drop"


def network_of(address: str) -> str:
    """The client network an address belongs to: its /24 (IPv4) or /56 (IPv6)."""
    if ":" not in address:
        return address.rpartition(".")[0]
    try:
        ip = ipaddress.IPv6Address(address.partition("%")[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped).rpartition(".")[0]
    return ip.packed[:7].hex()


class ResponseRateLimiter:
    """A token bucket of answers per client network; a rate of 0 switches it off."""

    def __init__(self, rate: float, burst: int, slip: int) -> None:
        self.rate = rate
        self.burst = max(1.0, float(burst))
        self.slip = slip
        self._networks: dict[str, list[float]] = {}  # network: [tokens, when, refused so far]

    def verdict(self, address: str, now: float) -> Verdict:
        """Whether a request from `address` at `now` (monotonic seconds) gets its answer."""
        if self.rate <= 0:
            return Verdict.ANSWER
        key = network_of(address)
        state = self._networks.get(key)
        if state is None:
            if len(self._networks) >= _MAX_NETWORKS:
                self._networks.clear()
            state = self._networks[key] = [self.burst, now, 0.0]
        tokens = min(self.burst, state[0] + (now - state[1]) * self.rate)
        state[1] = now
        if tokens >= 1.0:
            state[0] = tokens - 1.0
            return Verdict.ANSWER
        state[0] = tokens
        state[2] += 1
        if self.slip and state[2] % self.slip == 0:
            return Verdict.SLIP
        return Verdict.DROP
