"""Who may read and write across origins (resolver/http/cors.py).

The reference is the Handle.Net proxy's deployment descriptor
(src/main/java/net/handle/apps/servlet_proxy/resources/WEB-INF/web.xml): Jetty's CrossOriginFilter
on every path with every origin and allowCredentials false; here that holds for anonymous reads,
and writes and credentials are for the origins of --cors-origins only.
"""

from __future__ import annotations

import pytest

from resolver.http.cors import PUBLIC, PUBLIC_BYTES, CorsPolicy

ERP = "https://erp.example.com"
POLICY = CorsPolicy((ERP,))
NONE = CorsPolicy(())
ANY = CorsPolicy(("*",))


@pytest.mark.parametrize(
    ("route", "method"),
    [
        ("/api/handles/{handle}", "GET"),
        ("/api/handles/{handle}", "HEAD"),
        ("/api/handles/{handle}", "POST"),  # HandleJsonRestApiServlet.doPost: a resolution
        ("/{handle}", "GET"),
        ("/hrls/handles", "GET"),
        ("/api/prefixes", "GET"),
    ],
)
def test_anonymous_reads_are_public_whatever_the_origin(route: str, method: str) -> None:
    for policy in (POLICY, NONE, ANY):
        for origin in (None, "https://evil.example", ERP):
            assert policy.headers(route, method, origin, authorized=False) == PUBLIC


@pytest.mark.parametrize(
    ("route", "method", "authorized"),
    [
        ("/api/handles/{handle}", "GET", True),
        ("/api/handles/{handle}", "PUT", True),
        ("/api/handles/{handle}", "DELETE", False),
        ("/{handle}", "POST", False),
        ("/admin/enterprises", "GET", True),
        ("/identityv2/data", "POST", True),
        ("/metrics", "GET", False),
        (None, "GET", False),  # no route
    ],
)
def test_everything_else_only_for_configured_origins(
    route: str | None, method: str, authorized: bool
) -> None:
    credentialed = dict(POLICY.headers(route, method, ERP, authorized))
    assert credentialed["Access-Control-Allow-Origin"] == ERP
    assert credentialed["Access-Control-Allow-Credentials"] == "true"
    assert credentialed["Vary"] == "Origin"
    assert (
        dict(POLICY.headers(route, method, ERP.upper(), authorized))["Access-Control-Allow-Origin"]
        == ERP.upper()
    )
    assert POLICY.headers(route, method, "https://evil.example", authorized) == (("Vary", "Origin"),)
    assert POLICY.headers(route, method, None, authorized) == (("Vary", "Origin"),)
    assert NONE.headers(route, method, ERP, authorized) == ()
    assert dict(ANY.headers(route, method, "https://evil.example", authorized))[
        "Access-Control-Allow-Origin"
    ] == ("https://evil.example")


@pytest.mark.parametrize(
    "origin", ["null", "https://a.example\r\nX: y", "https://é.example", "ftp://x", "https://a/b"]
)
def test_an_origin_that_is_not_one_is_never_echoed(origin: str) -> None:
    """Even with --cors-origins '*': only scheme://host[:port] in printable ASCII goes into a header."""
    assert not ANY.allows(origin)


def test_preflights() -> None:
    public = POLICY.preflight("/api/handles/{handle}", "https://evil.example", "GET", "X-Request-Id, accept")
    assert public is not None and dict(public)["Access-Control-Allow-Origin"] == "*"
    assert "POST" in dict(public)["Access-Control-Allow-Methods"]
    assert POLICY.preflight("/api/handles/{handle}", "https://evil.example", "GET", "authorization") is None
    assert POLICY.preflight("/api/handles/{handle}", "https://evil.example", "PUT", "") is None
    assert POLICY.preflight("/admin/audit", "https://evil.example", "GET", "") is None
    write = POLICY.preflight("/api/handles/{handle}", ERP, "DELETE", "Authorization")
    assert write is not None
    assert dict(write)["Access-Control-Allow-Origin"] == ERP and dict(write)["Vary"] == "Origin"
    assert POLICY.preflight("/api/handles/{handle}", ERP, "PATCH", "") is None
    assert POLICY.preflight("/api/handles/{handle}", ERP, "PUT", "x-custom") is None
    assert NONE.preflight("/admin/audit", ERP, "GET", "") is None


def test_the_fast_paths_bytes_are_the_public_headers() -> None:
    assert b"".join(f"{k}: {v}\r\n".encode() for k, v in PUBLIC) == PUBLIC_BYTES
