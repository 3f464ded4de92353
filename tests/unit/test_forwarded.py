"""Who the client is behind --trusted-proxies (resolver/http/forwarded.py), and who never is.

The reference reads the client address from the servlet request (HDLProxy.getRemoteInetAddress
in src/main/java/net/handle/apps/servlet_proxy/HDLProxy.java, used by
BaseHandleRequestProcessingServlet.getRemoteInetAddress); here a forwarded address is believed
only from a peer inside the configured networks, taking the rightmost hop that is not a proxy.
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from resolver.config import Config
from resolver.http.connections import ConnectionGuard
from resolver.http.forwarded import FORWARDED_BASE, TrustedProxies, apply, link_base, parse_address

PROXIES = TrustedProxies(("10.0.0.0/8", "fd00::/8"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.9", "203.0.113.9"),
        (" 203.0.113.9 ", "203.0.113.9"),
        ("203.0.113.9:4711", "203.0.113.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("fe80::1%eth0", "fe80::1"),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        ("[2001:db8::1", None),
    ],
)
def test_addresses_as_proxies_write_them(text: str, expected: str | None) -> None:
    address = parse_address(text)
    assert (str(address) if address is not None else None) == expected


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        (["203.0.113.9"], "203.0.113.9"),
        (["198.51.100.1, 203.0.113.9"], "203.0.113.9"),  # the left one is the client's own claim
        (["203.0.113.9, 10.0.0.2"], "203.0.113.9"),  # through two proxies
        (["203.0.113.9", "10.0.0.2"], "203.0.113.9"),  # the header repeated
        (["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # only proxies: the farthest
        (["203.0.113.9, unknown"], "10.0.0.1"),  # garbage from the proxy: the proxy itself
        (["unknown, 203.0.113.9"], "203.0.113.9"),
        ([], "10.0.0.1"),
        (["fd00::5, 2001:db8::7"], "2001:db8::7"),
    ],
)
def test_the_client_is_the_rightmost_untrusted_hop(forwarded_for: list[str], client: str) -> None:
    assert PROXIES.client("10.0.0.1", forwarded_for) == client


def _request(peer: str, **headers: str) -> object:
    transport_peer = (peer, 4711)

    class Transport:
        def get_extra_info(self, name: str, default: object = None) -> object:
            return transport_peer if name == "peername" else default

        def is_closing(self) -> bool:
            return False

    return make_mocked_request("GET", "/88.123/x", headers=headers, transport=Transport())


def test_nothing_forwarded_is_believed_from_an_untrusted_peer() -> None:
    request = _request(
        "203.0.113.50",
        **{"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
    )
    assert PROXIES.view(request) is None  # type: ignore[arg-type]
    assert apply(request, PROXIES) is request  # type: ignore[arg-type]
    assert TrustedProxies(()).trusts("127.0.0.1") is False


def test_a_trusted_proxy_names_client_scheme_and_host() -> None:
    request = _request(
        "10.9.9.9",
        **{
            "X-Forwarded-For": "1.2.3.4",
            "X-Forwarded-Host": "ID.Example.com:8443",
            "X-Forwarded-Proto": "HTTPS",
        },
    )
    seen = apply(request, PROXIES)  # type: ignore[arg-type]
    assert seen.remote == "1.2.3.4"
    assert seen[FORWARDED_BASE] == "https://id.example.com:8443"
    config = Config()
    assert link_base(config, seen) == "https://id.example.com:8443"
    assert link_base(Config(public_url="https://node.example/"), seen) == "https://node.example"
    assert link_base(config, None) == config.public_base


@pytest.mark.parametrize(
    "host",
    ["evil.example/path", "evil.example@x", "a b", "evil.example:99999x", "<script>", "évil.example"],
)
def test_a_forwarded_host_that_is_not_a_host_is_not_a_base(host: str) -> None:
    """The Host header (passed on by the proxy) is taken instead, checked the same way."""
    request = _request("10.0.0.1", **{"X-Forwarded-Host": host, "Host": "node.internal:8000"})
    seen = PROXIES.view(request)  # type: ignore[arg-type]
    assert seen is not None and seen.base == "http://node.internal:8000"
    bad = _request("10.0.0.1", **{"X-Forwarded-Host": host, "Host": "a/b"})
    seen = PROXIES.view(bad)  # type: ignore[arg-type]
    assert seen is not None and seen.base is None


def test_an_unknown_forwarded_scheme_gives_no_base() -> None:
    request = _request(
        "10.0.0.1", **{"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "id.example.com"}
    )
    seen = PROXIES.view(request)  # type: ignore[arg-type]
    assert seen is not None and seen.base is None


def test_a_trusted_proxy_has_no_connection_cap() -> None:
    """A load balancer holds many clients' connections; other addresses keep their cap."""
    guard = ConnectionGuard(header_timeout=0, per_address=2, trusted_proxies=("10.0.0.0/8",))
    assert all(guard.admit("10.0.0.1") for _ in range(50))
    assert guard.admit("203.0.113.9") and guard.admit("203.0.113.9")
    assert not guard.admit("203.0.113.9")
    assert guard.refused == 1
