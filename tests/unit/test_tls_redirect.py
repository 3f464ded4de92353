"""Where the plain-HTTP port sends a request (resolver/http/tls.py https_base): the host the client
named, on the TLS port, or --public-url when it is https; nothing a hostile Host header could turn
into a header injection or another scheme; and the default public address follows the scheme."""

from __future__ import annotations

from dataclasses import replace

import pytest

from resolver.config import Config
from resolver.http.tls import https_base

CONFIG = Config(port=8443, tls_cert="c.pem", tls_key="k.pem")


@pytest.mark.parametrize(
    "host, base",
    [
        ("node.example", "https://node.example:8443"),
        ("node.example:80", "https://node.example:8443"),
        ("127.0.0.1:8080", "https://127.0.0.1:8443"),
        ("[::1]:8080", "https://[::1]:8443"),
        ("[::1]", "https://[::1]:8443"),
    ],
)
def test_the_host_the_client_named_on_the_tls_port(host, base):
    assert https_base(CONFIG, host) == base


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "evil host",
        "a\r\nSet-Cookie: x=1",
        "::1",
        "[::1",
        "x/y",
        "user@host",
        "-leading.example",
        "é.example",
    ],
)
def test_hosts_no_redirect_is_made_to(host):
    assert https_base(CONFIG, host) is None


def test_public_url_wins_when_https_and_port_443_is_left_out():
    assert (
        https_base(replace(CONFIG, public_url="https://id.example.com/"), "other") == "https://id.example.com"
    )
    assert https_base(replace(CONFIG, port=443), "node.example") == "https://node.example"
    # an http --public-url is not where an HTTPS redirect goes
    assert (
        https_base(replace(CONFIG, public_url="http://id.example.com"), "n.example")
        == "https://n.example:8443"
    )


def test_default_public_address_follows_the_scheme():
    assert CONFIG.public_base == "https://127.0.0.1:8443"  # HS_SITE, scan pages and QR codes
    assert Config(port=8000).public_base == "http://127.0.0.1:8000"


def test_the_site_record_names_the_https_interface():
    from resolver.upstream.site import site_record

    interfaces = site_record(CONFIG)["servers"][0]["interfaces"]
    assert {"query": True, "admin": True, "protocol": "HTTPS", "port": 8443} in interfaces
