"""Cross-origin reads and writes, as Handle.Net offers them.

The Handle.Net proxy (src/main/java/net/handle/apps/servlet_proxy/resources/WEB-INF/web.xml) puts
Jetty's CrossOriginFilter in front of the Handle API and the proxy pages with every origin allowed
and `allowCredentials` false, answers preflights in the filter (`chainPreflight` false), and
exposes every header it sets (CorsAccessControlExposeHeadersFilter). Here:

- Resolution is readable from any page: an anonymous GET or HEAD of the Handle API, the proxy and
  scan pages, /hrls and the API description (and the Handle API's POST resolution) is answered
  with `Access-Control-Allow-Origin: *`, no credentials, whatever the Origin, so one cached answer
  serves every origin and no `Vary` is needed.
- Everything else (writes, requests with Authorization, the enterprise and operator APIs) only
  from the origins of --cors-origins: the origin is echoed, with credentials allowed and
  `Vary: Origin`; other origins get no CORS header, so the browser keeps the answer from the page.
- A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered 204 with the
  methods, headers and max-age it may use, or refused 403 in the API's error shape with no CORS
  header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

READ_METHODS = frozenset(("GET", "HEAD"))
# routes (aiohttp canonical templates) whose anonymous reads any origin may make
PUBLIC_ROUTES = frozenset(
    (
        "/api/handles",
        "/api/handles/{handle}",
        "/api/prefixes",
        "/hrls/handles",
        "/hrls/handles/",
        "/openapi.json",
        "/docs",
        "/",
        "/{handle}",
    )
)
# the Handle API resolves by POST as well (HandleJsonRestApiServlet.doPost: GET with the
# parameters in a JSON body)
_PUBLIC_POST = frozenset(("/api/handles/{handle}",))
# request headers a page may send: CORS-safelisted ones, the request id; Authorization only from
# the configured origins
PUBLIC_HEADERS = frozenset(("accept", "accept-language", "content-language", "content-type", "x-request-id"))
CREDENTIAL_HEADERS = PUBLIC_HEADERS | {"authorization"}
WRITE_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE"))
MAX_AGE = "1800"  # seconds a browser keeps a preflight's answer (CrossOriginFilter's default)
EXPOSED = "Allow, Content-Length, Location, Retry-After, WWW-Authenticate, X-Request-Id"
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")

# the headers of an anonymous read, whatever the Origin (constant: the fast path sends the same)
PUBLIC = (("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", EXPOSED))
PUBLIC_BYTES = b"".join(b"%s: %s\r\n" % (name.encode(), value.encode()) for name, value in PUBLIC)


class CorsPolicy:
    """Which origins may do what, from --cors-origins (`*`: every origin may write)."""

    def __init__(self, origins: Sequence[str]) -> None:
        self.any_origin = "*" in origins
        self.origins = frozenset(o for o in origins if o != "*")
        self.configured = self.any_origin or bool(self.origins)

    def allows(self, origin: str | None) -> bool:
        """True when pages of `origin` may write and send credentials."""
        if not origin or not self.configured or not origin.isascii() or not origin.isprintable():
            return False  # (an origin echoed must be printable ASCII: it goes into a header)
        folded = origin.lower()
        if folded in self.origins:
            return True
        return self.any_origin and _ORIGIN.fullmatch(origin) is not None

    @staticmethod
    def is_public(route: str | None, method: str, authorized: bool) -> bool:
        """An anonymous read any origin may make."""
        if authorized or route not in PUBLIC_ROUTES:
            return False
        return method in READ_METHODS or (method == "POST" and route in _PUBLIC_POST)

    def headers(
        self, route: str | None, method: str, origin: str | None, authorized: bool
    ) -> Sequence[tuple[str, str]]:
        """The CORS headers of the answer to a request that is not a preflight."""
        if self.is_public(route, method, authorized):
            return PUBLIC
        if self.allows(origin):
            assert origin is not None
            return _credentialed(origin)
        if self.configured:
            return (("Vary", "Origin"),)  # another origin's answer to this request differs
        return ()

    def preflight(
        self, route: str | None, origin: str, method: str, requested: str
    ) -> Sequence[tuple[str, str]] | None:
        """The headers of a 204 answering a preflight from `origin` for `method` with the request
        headers `requested` (Access-Control-Request-Headers), or None: refused."""
        wanted = {h.strip().lower() for h in requested.split(",") if h.strip()}
        if wanted <= PUBLIC_HEADERS and self.is_public(route, method, authorized=False):
            methods = "GET, HEAD, POST" if route in _PUBLIC_POST else "GET, HEAD"
            return (
                ("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Allow-Methods", methods),
                (
                    "Access-Control-Allow-Headers",
                    "Accept, Accept-Language, Content-Language, Content-Type, X-Request-Id",
                ),
                ("Access-Control-Max-Age", MAX_AGE),
            )
        if self.allows(origin) and method in WRITE_METHODS and wanted <= CREDENTIAL_HEADERS:
            return (
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Credentials", "true"),
                ("Access-Control-Allow-Methods", ", ".join(sorted(WRITE_METHODS))),
                (
                    "Access-Control-Allow-Headers",
                    "Authorization, Accept, Accept-Language, Content-Language, Content-Type, X-Request-Id",
                ),
                ("Access-Control-Max-Age", MAX_AGE),
                ("Vary", "Origin"),
            )
        return None


def _credentialed(origin: str) -> tuple[tuple[str, str], ...]:
    return (
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Expose-Headers", EXPOSED),
        ("Vary", "Origin"),
    )
