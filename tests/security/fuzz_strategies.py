"""Hypothesis strategies for HTTP requests to every route of the node, and the model of one request.

Requests are built from what a real client could put on the wire: every route of the Handle API, the
reverse lookup, the enterprise API, the operator API, the probes and the web proxy face, with
valid, odd and malformed paths, query strings, headers, credentials and bodies. The `World` says
what exists on the node (tenants, their handles and credentials), so that a good part of the
requests get past authentication and reach the code behind it.
"""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

from hypothesis import strategies as st
from hypothesis.internal.conjecture.providers import AVAILABLE_PROVIDERS, HypothesisProvider
from yarl import URL

# -- the world the fuzzer knows --------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    """An enterprise admitted on the node, with an enabled prefix, a user and its credentials."""

    name: str
    prefix: str
    enterprise_id: int
    user_id: int
    username: str
    password: str
    secret: str  # of the prefix administrator 300:0.NA/<prefix>
    token: str
    handles: tuple[str, ...]
    # A sacrificial tenant may be disabled, rotated, or lock itself out by the fuzzer's valid
    # requests; the others keep their state for the whole run (see `guard`).
    sacrificial: bool = False


@dataclass(frozen=True)
class World:
    host: str  # host:port of the node
    node_prefix: str
    admin_user: str
    admin_secret: str
    tenants: tuple[Tenant, ...]
    node_handles: tuple[str, ...]
    max_body_bytes: int
    max_batch_body_bytes: int

    def tenant(self, name: str) -> Tenant:
        return next(t for t in self.tenants if t.name == name)

    @property
    def scratch_handles(self) -> tuple[str, ...]:
        """Handles nobody registered at first: the fuzzer creates, reads and deletes them."""
        prefixes = [self.node_prefix, *(t.prefix for t in self.tenants)]
        return tuple(f"{prefix}/W-{i}" for prefix in prefixes for i in (1, 2))

    @property
    def all_handles(self) -> tuple[str, ...]:
        return self.node_handles + tuple(h for t in self.tenants for h in t.handles) + self.scratch_handles


# -- the request model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Auth:
    """An Authorization header and what the fuzzer knows about it.

    `principal`: "admin", a tenant's name, or None (nobody). `valid`: True when the credentials are
    good, False when they must be refused, None when the node may decide either way (odd spellings
    of good credentials).
    """

    kind: str
    header: str | bytes | None
    principal: str | None
    valid: bool | None


NO_AUTH = Auth("none", None, None, False)


@dataclass(repr=False)
class FuzzRequest:
    """One HTTP/1.1 request as it goes on the wire, with what the oracles need to judge its answer."""

    route: str  # the route the request was aimed at (coverage)
    method: str
    path: str  # raw, as sent (percent-encoded or not)
    query: str  # raw query string, without '?'
    headers: list[tuple[str, str | bytes]]
    body: bytes
    auth: Auth = NO_AUTH
    chunks: tuple[int, ...] | None = None  # Transfer-Encoding: chunked with these chunk sizes
    version: str = "HTTP/1.1"
    framing: str | None = None  # a deliberately malformed message, and how
    body_note: str = ""  # how the body was built, for a readable replay
    # what the request asks the node to change: handles written, templates' prefixes
    writes: tuple[str, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.path + ("?" + self.query if self.query else "")

    def __repr__(self) -> str:
        return f"<{self.method} {self.target[:120]!r} {self.auth.kind} {len(self.body)} bytes>"

    def wire(self) -> bytes:
        """The bytes of the request."""
        lines = [f"{self.method} {self.target} {self.version}".encode("utf-8", "surrogateescape")]
        headers = list(self.headers)
        if self.auth.header is not None:
            headers.append(("Authorization", self.auth.header))
        body = self.body
        if self.chunks is not None:
            headers.append(("Transfer-Encoding", "chunked"))
            body = chunked(self.body, self.chunks)
        elif self.body or self.method in ("POST", "PUT", "PATCH", "DELETE"):
            headers.append(("Content-Length", str(len(self.body))))
        for name, value in headers:
            raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
            lines.append(name.encode("latin-1") + b": " + raw)
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        return break_framing(self.framing, head, body) if self.framing else head + body

    def replay(self, limit: int = 3000) -> str:
        """A readable form of the request, and its exact bytes (shortened when huge)."""
        raw = self.wire()
        shown = raw if len(raw) <= limit else raw[:limit]
        tail = "" if len(raw) <= limit else f"  ... ({len(raw)} bytes in all)"
        header_lines = "\n".join(f"    {name}: {value!r}" for name, value in self.headers)
        return (
            f"route {self.route}: {self.method} {self.target[:500]!r}"
            f"{' [framing: ' + self.framing + ']' if self.framing else ''}\n"
            f"  auth: {self.auth.kind} (principal {self.auth.principal}, valid {self.auth.valid})\n"
            f"  headers:\n{header_lines}\n"
            f"  body ({len(self.body)} bytes{', chunked ' + str(self.chunks[:10]) if self.chunks else ''})"
            f"{' ' + self.body_note if self.body_note else ''}: {self.body[:400]!r}\n"
            f"  raw = {shown!r}{tail}"
        )


def chunked(body: bytes, sizes: Sequence[int]) -> bytes:
    """`body` in chunks of the given sizes (the rest in one more), then the last chunk."""
    out, at = [], 0
    for size in sizes:
        if at >= len(body):
            break
        piece = body[at : at + max(1, size)]
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        at += len(piece)
    if at < len(body):
        out.append(b"%x\r\n%s\r\n" % (len(body) - at, body[at:]))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


FRAMING_KINDS = (
    "bare-lf",  # LF instead of CRLF line ends
    "space-in-target",
    "raw-control-in-target",
    "header-without-colon",
    "space-before-colon",
    "obs-fold",
    "te-and-cl",
    "bad-chunk-size",
    "http-2.0",
    "http-0.9",
    "lowercase-version",
    "cl-plus-sign",
    "two-content-lengths",
    "header-line-too-long",
    "nul-in-header",
    "method-with-control",
)


def break_framing(kind: str, head: bytes, body: bytes) -> bytes:
    """The request with its HTTP framing broken in one way (sent on a connection of its own)."""
    first, _, rest = head.partition(b"\r\n")
    method, _, target_version = first.partition(b" ")
    target, _, version = target_version.rpartition(b" ")
    if kind == "bare-lf":
        return head.replace(b"\r\n", b"\n") + body
    if kind == "space-in-target":
        return method + b" " + target + b" x " + version + b"\r\n" + rest + body
    if kind == "raw-control-in-target":
        return method + b" " + target + b"\x01\x7f " + version + b"\r\n" + rest + body
    if kind == "header-without-colon":
        return first + b"\r\nX-Broken-Header\r\n" + rest + body
    if kind == "space-before-colon":
        return first + b"\r\nX-Spaced : 1\r\n" + rest + body
    if kind == "obs-fold":
        return first + b"\r\nX-Folded: a\r\n  b\r\n" + rest + body
    if kind == "te-and-cl":
        return (
            first
            + b"\r\nTransfer-Encoding: chunked\r\nContent-Length: %d\r\n" % len(body)
            + rest
            + chunked(body, [])
        )
    if kind == "bad-chunk-size":
        return first + b"\r\nTransfer-Encoding: chunked\r\n" + rest + b"zz\r\n" + body + b"\r\n0\r\n\r\n"
    if kind == "http-2.0":
        return method + b" " + target + b" HTTP/2.0\r\n" + rest + body
    if kind == "http-0.9":
        return method + b" " + target + b"\r\n\r\n"
    if kind == "lowercase-version":
        return method + b" " + target + b" http/1.1\r\n" + rest + body
    if kind == "cl-plus-sign":
        return first + b"\r\nContent-Length: +%d\r\n" % len(body) + strip_length(rest) + body
    if kind == "two-content-lengths":
        return (
            first
            + b"\r\nContent-Length: %d\r\nContent-Length: %d\r\n" % (len(body), len(body) + 1)
            + strip_length(rest)
            + body
        )
    if kind == "header-line-too-long":
        return first + b"\r\nX-Long: " + b"a" * 9000 + b"\r\n" + rest + body
    if kind == "nul-in-header":
        return first + b"\r\nX-Nul: a\x00b\r\n" + rest + body
    if kind == "method-with-control":
        return b"GE\x00T " + target + b" " + version + b"\r\n" + rest + body
    raise ValueError(kind)


def strip_length(header_block: bytes) -> bytes:
    return b"\r\n".join(
        line for line in header_block.split(b"\r\n") if not line.lower().startswith(b"content-length:")
    )


# -- which API answers a request -------------------------------------------------------------------

HANDLE_API, ENVELOPE_API, PROXY_FACE, PROBES = "handle", "envelope", "proxy", "probes"
ANY = None  # every method

# The routes in the order resolver/http/app.py registers them; a resource whose path matches but
# whose methods do not lets aiohttp go on to the next one, as its router does.
ROUTES: tuple[tuple[str, frozenset[str] | None, str], ...] = (
    ("/healthz", ANY, PROBES),
    ("/readyz", ANY, PROBES),
    ("/metrics", ANY, PROBES),
    ("/status", ANY, HANDLE_API),
    ("/api/handles", ANY, HANDLE_API),
    ("/api/prefixes", ANY, HANDLE_API),
    ("/api/stats", ANY, HANDLE_API),
    (r"/api/handles/(?P<handle>[\s\S]+)", ANY, HANDLE_API),
    ("/hrls/handles", frozenset({"GET"}), HANDLE_API),
    ("/hrls/handles/", frozenset({"GET"}), HANDLE_API),
    ("/identity/token", ANY, ENVELOPE_API),
    ("/identityv2/data", ANY, ENVELOPE_API),
    ("/identityv2/data/detail", ANY, ENVELOPE_API),
    ("/identityv2/data/batchCreate", ANY, ENVELOPE_API),
    ("/identityv2/data/batchUpdate", ANY, ENVELOPE_API),
    ("/identityv2/data/batchDelete", ANY, ENVELOPE_API),
    ("/snms/api/v5/template", ANY, ENVELOPE_API),
    ("/admin/enterprises", ANY, ENVELOPE_API),
    ("/admin/enterprises/[^{}/]+", ANY, ENVELOPE_API),
    ("/admin/enterprises/[^{}/]+/prefixes", ANY, ENVELOPE_API),
    ("/admin/enterprises/[^{}/]+/users", ANY, ENVELOPE_API),
    ("/admin/enterprises/[^{}/]+/users/[^{}/]+", ANY, ENVELOPE_API),
    ("/admin/prefixes/[^{}/]+/state", ANY, ENVELOPE_API),
    ("/admin/prefixes/[^{}/]+/credentials", ANY, ENVELOPE_API),
    ("/admin/audit", ANY, ENVELOPE_API),
    ("/", ANY, PROXY_FACE),
    (r"/(?P<handle>[\s\S]+)", ANY, PROXY_FACE),
)
_COMPILED = tuple((re.compile(pattern), methods, api) for pattern, methods, api in ROUTES)


def matched_path(target: str) -> str:
    """The path aiohttp matches routes against: percent-decoded except `%2F` and `%25`."""
    path = target.partition("?")[0].partition("#")[0]
    if not path.startswith("/"):
        path = URL(target, encoded=True).raw_path or "/"
    return URL.build(path=path, encoded=True).path_safe


def api_of(method: str, target: str) -> tuple[str, str]:
    """(the API whose error shape the answer must have, the route pattern that answers)."""
    path = matched_path(target)
    for (pattern, methods, api), (source, _, _) in zip(_COMPILED, ROUTES, strict=True):
        if pattern.fullmatch(path) and (methods is None or method in methods or path == "/"):
            return api, source
    # No route matches (aiohttp answers itself): the API the path belongs to should still answer.
    if path.startswith(("/api/", "/hrls/")):
        return HANDLE_API, "unrouted"
    if path.startswith(("/identity", "/snms/", "/admin/")):
        return ENVELOPE_API, "unrouted"
    return PROXY_FACE, "unrouted"


# The methods aiohttp's HTTP parser (llhttp) knows; any other is refused before routing.
KNOWN_METHODS = frozenset(
    [
        "DELETE",
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "CONNECT",
        "OPTIONS",
        "TRACE",
        "COPY",
        "LOCK",
        "MKCOL",
        "MOVE",
        "PROPFIND",
        "PROPPATCH",
        "SEARCH",
        "UNLOCK",
        "BIND",
        "REBIND",
        "UNBIND",
        "ACL",
        "REPORT",
        "MKACTIVITY",
        "CHECKOUT",
        "MERGE",
        "M-SEARCH",
        "NOTIFY",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "PATCH",
        "PURGE",
        "MKCALENDAR",
        "LINK",
        "UNLINK",
        "SOURCE",
        "QUERY",
    ]
)
MAX_LINE = 8190  # aiohttp's limit on the request line and on each header line
_TARGET_BYTES = re.compile(rb"[\x21-\x7e]*")
_HEADER_VALUE_BYTES = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")


def protocol_anomaly(request: FuzzRequest) -> str | None:
    """Why aiohttp's HTTP parser refuses the request before any route sees it, if it does:
    such requests get aiohttp's own plain-text 400, whichever API the path belongs to."""
    if request.framing:
        return f"framing: {request.framing}"
    if request.method not in KNOWN_METHODS:
        return "a method the parser does not know"
    if not _TARGET_BYTES.fullmatch(request.target.encode("utf-8", "surrogateescape")):
        return "a raw byte outside printable ASCII in the request target"
    for name, value in request.headers:
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
        if not _HEADER_VALUE_BYTES.fullmatch(raw):
            return f"a control character in the {name} header"
    auth = request.auth.header
    if auth is not None:
        raw = auth if isinstance(auth, bytes) else auth.encode("utf-8", "surrogateescape")
        if not _HEADER_VALUE_BYTES.fullmatch(raw):
            return "a control character in the Authorization header"
    if len(request.method) + len(request.target.encode("utf-8", "surrogateescape")) + 10 > MAX_LINE:
        return f"a request line longer than {MAX_LINE} bytes"
    for name, value in request.headers:
        if (
            len(name)
            + 2
            + len(value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape"))
            > MAX_LINE
        ):
            return f"a header line longer than {MAX_LINE} bytes"
    for name, value in request.headers:
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if name.lower() == "expect" and text.strip().lower() != "100-continue":
            return "an Expect other than 100-continue (aiohttp answers 417 before any handler)"
    hosts = sum(1 for name, _ in request.headers if name.lower() == "host")
    if request.version == "HTTP/1.1" and not hosts:
        return "HTTP/1.1 without Host"
    if hosts > 1:
        return "two Host headers"
    return None


# -- a backend for volume ---------------------------------------------------------------------------


class PlainRandomProvider(HypothesisProvider):
    """Hypothesis' own choices from its seeded random, without its search for interesting inputs.

    Hypothesis' default backend mutates the examples it has run (it copies parts of one into
    another) and starts many from the simplest choices: in a run of thousands of HTTP requests most
    of them came out as repeats (a quarter distinct in 4,000). This backend draws every example
    afresh (99% distinct), from the same seed, so `@seed` still replays a run; a failing example is
    replayed and shrunk on the default backend as usual.
    """


BACKEND = "resolver-fuzz"
AVAILABLE_PROVIDERS[BACKEND] = f"{__name__}.PlainRandomProvider"


# -- building blocks -------------------------------------------------------------------------------
#
# Every strategy is built once per run (`http_requests`); composite strategies only draw from
# strategies built before them. Building a strategy costs far more than drawing from it.


class Raw:
    """JSON text put into a body as it is (huge numbers, deep nesting, invalid escapes)."""

    def __init__(self, text: str, note: str = "") -> None:
        self.text = text
        self.note = note or text[:40]

    def __repr__(self) -> str:
        return f"Raw({self.note!r})"


class Pairs:
    """A JSON object with its keys in this order, repeats allowed."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs

    def __repr__(self) -> str:
        return f"Pairs({self.pairs!r})"


def encode_json(value: Any) -> bytes:
    """JSON bytes of `value`, with `Raw` and `Pairs` parts, strings in UTF-8 as they are."""
    if isinstance(value, Raw):
        return value.text.encode("utf-8", "surrogatepass")
    if isinstance(value, Pairs):
        return b"{" + b",".join(encode_json(k) + b":" + encode_json(v) for k, v in value.pairs) + b"}"
    if isinstance(value, dict):
        return b"{" + b",".join(encode_json(str(k)) + b":" + encode_json(v) for k, v in value.items()) + b"}"
    if isinstance(value, list | tuple):
        return b"[" + b",".join(encode_json(v) for v in value) + b"]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each `weight` times as likely as a weight of 1."""
    options = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(options).flatmap(lambda strategy: strategy)


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True once in `n` draws (not for the simplest draw, 0, which Hypothesis makes often)."""
    return st.integers(0, n - 1).map(lambda i: i == n // 2)


def deep(depth: int, kind: str = "list") -> Raw:
    if kind == "list":
        return Raw("[" * depth + "1" + "]" * depth, f"[...] nested {depth} deep")
    return Raw('{"a":' * depth + "1" + "}" * depth, f"{{...}} nested {depth} deep")


LONG_4BYTE = "𠀋😀" * 500  # 1000 characters of 4 bytes each
# A long URL that does not compress (an index entry of a repetitive one stays small).
LONG_URL = "https://example.com/" + base64.urlsafe_b64encode(random.Random(1).randbytes(4500)).decode()
SPECIAL_STRINGS = (
    "",
    " ",
    "a\x00b",
    "\x00",
    "\x01\x1b[31m\x7f\x85\x9f",
    "\r\nX-Injected: 1",
    "%0d%0aX-Injected: 1",
    "\u202e\u200b\ufeff",
    "\uffff\ufffe",
    "١٢٣",
    "１２３",
    "१२",
    "😀",
    "𠀋",
    "e\u0301",
    LONG_4BYTE,
    "x" * 20_000,
    "<script>alert(1)</script>",
    "'; drop table handles; --",
    "\\",
    "%",
    "%FF",
    "%00",
    "*",
    "_%",
    "..",
    "../../etc/passwd",
    "/",
    "javascript:alert(1)",
    "https://example.com/a b?c=<d>",
    "https://example.com/" + "p" * 3000,
    "https://example.com/" + "路径" * 1500,
    LONG_URL,
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-13-45",
    "0",
    "-1",
    "9" * 30,
    "true",
    "null",
)
SPECIAL_NUMBERS = (
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**30,
    -(10**30),
    1.5,
    -0.0,
    1e308,
    Raw("1e400"),
    Raw("-1e400"),
    Raw("1" * 400, "400 digits"),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("0x10"),
    Raw("01"),
    Raw('"\\ud800"', "a lone surrogate escape"),
    Raw('"\\u0000"', "an escaped NUL"),
    True,
    False,
    None,
)

special_string = st.sampled_from(SPECIAL_STRINGS)
short_text = weighted((3, st.text(max_size=10)), (1, special_string))
json_scalar = weighted(
    (2, st.sampled_from(SPECIAL_NUMBERS)),
    (2, special_string),
    (1, st.text(max_size=8)),
    (1, st.integers()),
)
JUNK: st.SearchStrategy[Any] = weighted(
    (5, json_scalar),
    (1, st.sampled_from([[], {}, [1, "a", None], {"": None}, {"a": {"b": []}}])),
    (1, st.lists(json_scalar, max_size=3)),
    (1, st.sampled_from([deep(300), deep(300, "dict"), deep(2000), deep(260, "dict")])),
)
DEEP_VALUES = (
    deep(300),
    deep(300, "dict"),
    Raw('{"a":' + "[" * 299 + '"\\u0000"' + "]" * 299 + "}", "a NUL 300 deep"),
    {"x": "\x00"},
    ["\x00", LONG_4BYTE],
)
_FIELD_MODES = st.integers(0, 19)
_EXTRA_KEYS = st.sampled_from(["", "\x00", "__proto__", "index", "data", "handle", "values"])


@st.composite
def shaped(
    draw: Any, fields: dict[str, st.SearchStrategy[Any]], optional: frozenset[str] = frozenset()
) -> Any:
    """An object with these fields, mostly valid: each may be junk or missing, a key may be added
    or repeated; `optional` fields are left out more often than not, as real clients do."""
    out: dict[str, Any] = {}
    for key, strategy in fields.items():
        mode = draw(_FIELD_MODES)
        if key in optional and mode < 12:
            continue
        if mode < 17:
            out[key] = draw(strategy)
        elif mode < 19:
            out[key] = draw(JUNK)
    extra = draw(_FIELD_MODES)
    if extra == 7:
        out[draw(_EXTRA_KEYS)] = draw(JUNK)
    elif extra == 13 and out:  # the first key again, its second value junk
        pairs = list(out.items())
        return Pairs([*pairs, (pairs[0][0], draw(JUNK))])
    return out


def mostly(strategy: st.SearchStrategy[Any], junk_one_in: int = 10) -> st.SearchStrategy[Any]:
    """The strategy, or junk once in a while."""
    return weighted((junk_one_in - 1, strategy), (1, JUNK))


# -- handles, paths and query strings --------------------------------------------------------------


SANE_SUFFIX = st.text(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:产品螺栓"),
    min_size=1,
    max_size=12,
)


def handles(world: World, clean: bool = False) -> st.SearchStrategy[str]:
    """Handles a client could name: known ones of every tenant, prefix records, odd ones (not when
    `clean`: then they are well-formed handles under the node's prefixes)."""
    tenants = [t.prefix for t in world.tenants]
    node = world.node_prefix
    known = st.sampled_from(list(world.all_handles))
    if clean:
        sane = st.builds(lambda p, s: f"{p}/{s}", st.sampled_from([*tenants, node]), SANE_SUFFIX)
        records = st.sampled_from([f"0.NA/{p}" for p in (*tenants, f"{tenants[0]}.1", f"{node}.99")])
        return weighted((6, known), (3, sane), (1, records))
    prefix = st.sampled_from(
        [
            *tenants,
            *tenants,
            node,
            f"{node}.99",
            f"{tenants[0]}.1",
            "0.NA",
            "86.100",
            "88",
            "88.123.45 ",
            "88.١٢٣",
            "８８.１２３",
            "88..123",
            ".88",
            "88.123.",
            "a" * 65,
            "",
        ]
    )
    suffix = weighted(
        (5, st.sampled_from(["ABC-0001", "x", "new-1", "P-001", "E-1", "KNOWN", "T-1", "Fuzz-2"])),
        (2, st.text(max_size=10)),
        (1, st.text(st.characters(codec="ascii"), max_size=10)),
        (1, special_string),
        (1, st.sampled_from(["s" * 300, "a/b", "../x", "./x", "x/..", "%", "%2F", "a\x00b", "a\nb", "a b"])),
    )
    prefix_records = st.sampled_from(
        [f"0.NA/{p}" for p in (*tenants, node, f"{node}.99", f"{tenants[0]}.1", "88", "0.NA")]
        + [f"0.na/{tenants[0]}", f"0.NA/{node.upper()}", f"0.NA/{tenants[2]}"]
    )
    composed = st.builds(lambda p, s: f"{p}/{s}", prefix, suffix)
    cased = known.map(lambda h: h.swapcase())
    schemed = st.builds(lambda s, h: s + h, st.sampled_from(["hdl:", "doi:", "info:hdl/", "urn:hdl:"]), known)
    return weighted(
        (6, known),
        (1, cased),
        (1, schemed),
        (2, prefix_records),
        (5, composed),
        (1, st.sampled_from([node, "88.123/", "/x", "", "0.NA/", "hdl:"])),
    )


def prefixes(world: World, clean: bool = False) -> st.SearchStrategy[str]:
    tenants = [t.prefix for t in world.tenants]
    sane = st.sampled_from([*tenants, world.node_prefix, f"{world.node_prefix}.99", f"{tenants[0]}.1"])
    if clean:
        return sane
    return weighted(
        (6, sane),
        (1, st.sampled_from(["0.NA", "88.١٢٣", "88..1", "", "a" * 65, "88.123.45/x", "%FF", "\x00", "8%00"])),
        (1, short_text),
    )


def encode_segment(text: str, how: str) -> str:
    """A handle (or any text) put into a path as a client might: encoded, half-encoded, raw."""
    if how == "quote":
        return quote(text, safe="/:")
    if how == "quote-all":
        return quote(text, safe="")
    if how == "every-char":
        return "".join(f"%{b:02X}" for b in text.encode("utf-8", "surrogatepass"))
    if how == "raw-utf8":  # what aiohttp's parser refuses: raw bytes above ASCII
        return "".join(c if c.isprintable() and c not in " ?#%" else quote(c) for c in text)
    if how == "lower-hex":
        return quote(text, safe="/").lower() if text.isascii() else quote(text, safe="/")
    raise ValueError(how)


ENCODINGS = st.sampled_from(["quote"] * 12 + ["quote-all"] * 2 + ["every-char", "lower-hex", "raw-utf8"])
PATH_INJECTIONS = st.sampled_from(
    ["%FF", "%00", "%0A", "%0D%0A", "%C0%AF", "%E2%80%AE", "%", "%G1", "%%", "%2e%2e", "%FE%FF", "%ED%A0%80"]
)
_PATH_MODES = st.integers(0, 11)
_DOT_PREFIXES = st.sampled_from(["..", "../admin/audit", "./", "//x", "..%2F..%2Fadmin", ";x=1"])


@st.composite
def handle_path(
    draw: Any, handle_names: st.SearchStrategy[str], base: str, clean: bool = False
) -> tuple[str, str]:
    """(raw path, the handle it names) for a route `base` + handle."""
    handle = draw(handle_names)
    encoded = encode_segment(handle, "quote" if clean else draw(ENCODINGS))
    mode = 0 if clean else draw(_PATH_MODES)
    if mode == 5:  # an invalid or surprising escape somewhere in it
        at = draw(st.integers(0, len(encoded)))
        encoded = encoded[:at] + draw(PATH_INJECTIONS) + encoded[at:]
    elif mode == 7:
        encoded = draw(_DOT_PREFIXES) + "/" + encoded
    return base + encoded, handle


HUGE_INTS = ("9223372036854775807", "9223372036854775808", "-9223372036854775809", "9" * 40, "1" * 13)
NUMBER_TEXT = st.sampled_from(
    ["0", "1", "2", "10", "100", "-1", "+5", " 5 ", "1e3", "0x10", "1_000", "١٢", "１２", "", *HUGE_INTS]
)
_OTHER_KEYS = weighted((3, st.sampled_from(["x", "callback", "_", "a[]", ""])), (1, short_text))
_QUERY_STYLES = st.sampled_from(["quote"] * 8 + ["plus"] * 3 + ["raw"])
_QUERY_ENCODERS: dict[str, Callable[[str], str]] = {
    "quote": lambda s: quote(s, safe=""),
    "plus": quote_plus,
    "raw": lambda s: encode_segment(s, "raw-utf8"),
}


def param_value(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return weighted((6, valid), (1, special_string), (1, st.text(max_size=8)), (1, NUMBER_TEXT))


def query_string(
    params: dict[str, st.SearchStrategy[str]], max_pairs: int = 4, clean: bool = False
) -> st.SearchStrategy[str]:
    """Query strings of these parameters (repeats, bare keys, odd encodings) and some others; when
    `clean`, only these parameters with their values, each at most once."""
    keys = st.sampled_from(list(params)) if params else None
    if clean:
        if keys is None:
            return st.just("")
        pairs = st.lists(st.tuples(keys, st.just("")), max_size=min(max_pairs, 2), unique_by=lambda p: p[0])
        return pairs.flatmap(
            lambda chosen: st.tuples(*(params[key] for key, _ in chosen)).map(
                lambda values: "&".join(
                    f"{quote(key, safe='')}={quote(value, safe='')}"
                    for (key, _), value in zip(chosen, values, strict=True)
                )
            )
        )
    values = {key: param_value(strategy) for key, strategy in params.items()}
    counts = st.integers(0, max_pairs)
    kinds = st.integers(0, 7)
    bare = one_in(12)

    @st.composite
    def build(draw: Any) -> str:
        pairs: list[tuple[str, str | None]] = []
        for _ in range(draw(counts)):
            if keys is not None and draw(kinds) != 5:
                key = draw(keys)
                value = draw(values[key])
            else:
                key, value = draw(_OTHER_KEYS), draw(short_text)
            pairs.append((key, None if draw(bare) else value))
        enc = _QUERY_ENCODERS[draw(_QUERY_STYLES)]
        text = "&".join(enc(k) if v is None else f"{enc(k)}={enc(v)}" for k, v in pairs)
        if text and draw(one_in(10)):
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(PATH_INJECTIONS) + text[at:]
        if draw(one_in(60)):
            text += "&huge=" + "9" * 6000
        return text

    return build()


# -- credentials -----------------------------------------------------------------------------------


def basic_header(user: str, password: str, *, encode_user: bool = True) -> str:
    """Basic credentials as pyhandle sends them (the user percent-encoded)."""
    name = quote(user) if encode_user else user
    return "Basic " + base64.b64encode(f"{name}:{password}".encode("utf-8", "surrogatepass")).decode()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def credentials(world: World) -> st.SearchStrategy[Auth]:
    """Authorization headers: good ones of every principal, wrong, odd and malformed ones."""
    admin, secret = world.admin_user, world.admin_secret
    good: list[Auth] = [Auth("admin-basic", basic_header(admin, secret), "admin", True)]
    wrong: list[Auth] = [
        Auth("admin-wrong-secret", basic_header(admin, secret + "x"), None, False),
        Auth("admin-index-0", basic_header(admin.partition(":")[2], secret + "y"), None, False),
    ]
    handle = admin.partition(":")[2]
    # Spellings of the administrator's identity that a client might send; the node may take them.
    odd: list[Auth] = [
        Auth("admin-lowercase", basic_header(admin.lower(), secret), "admin", None),
        Auth("admin-unencoded-colon", basic_header(admin, secret, encode_user=False), "admin", None),
        Auth("admin-leading-zeros", basic_header("0300:" + handle, secret), "admin", None),
        Auth("admin-space", basic_header(" " + admin, secret), "admin", None),
        Auth("admin-scheme-case", "bAsIc " + basic_header(admin, secret)[6:], "admin", None),
        Auth("admin-hdl-scheme", basic_header("300:hdl:" + handle, secret), "admin", None),
    ]
    # ...and spellings it must refuse, even with the right secret: an index is ASCII digits, a
    # handle has no control characters.
    wrong += [
        Auth("admin-unicode-digits", basic_header("٣٠٠:" + handle, secret), None, False),
        Auth("admin-fullwidth-digits", basic_header("３００:" + handle, secret), None, False),
        Auth("admin-superscript-digits", basic_header("³⁰⁰:" + handle, secret), None, False),
        Auth("admin-nul", basic_header(admin + "\x00", secret), None, False),
        Auth("admin-nul-escaped", "Basic " + b64(f"{quote(admin)}%00:{secret}".encode()), None, False),
        Auth("admin-plus-index", basic_header("+300:" + handle, secret), None, False),
    ]
    for tenant in world.tenants:
        identity = f"300:0.NA/{tenant.prefix}"
        good += [
            Auth(f"{tenant.name}-prefix-admin", basic_header(identity, tenant.secret), tenant.name, True),
            Auth(
                f"{tenant.name}-user-basic", basic_header(tenant.username, tenant.password), tenant.name, True
            ),
            Auth(f"{tenant.name}-bearer", f"Bearer {tenant.token}", tenant.name, True),
        ]
        wrong += [
            Auth(
                f"{tenant.name}-wrong-secret",
                basic_header(identity, "wrong-secret"),
                None,
                False,
            ),
            Auth(
                f"{tenant.name}-user-wrong",
                basic_header(tenant.username, "wrong-pass"),
                None,
                False,
            ),
            Auth(f"{tenant.name}-bearer-tampered", f"Bearer {tenant.token[:-2]}xx", None, False),
            Auth(
                f"{tenant.name}-bearer-payload-only", f"Bearer {tenant.token.partition('.')[0]}", None, False
            ),
        ]
        odd += [
            Auth(f"{tenant.name}-bare-token", tenant.token, tenant.name, None),
            Auth(f"{tenant.name}-bearer-lowercase", f"bearer {tenant.token}", tenant.name, None),
            Auth(f"{tenant.name}-bearer-spaces", f"Bearer   {tenant.token}  ", tenant.name, None),
        ]
    a, b = world.tenants[0], world.tenants[1]
    wrong.append(Auth("cross-secret", basic_header(f"300:0.NA/{b.prefix}", a.secret), None, False))
    malformed = [
        Auth("basic-empty", "Basic ", None, False),
        Auth("basic-alone", "Basic", None, False),
        Auth("basic-garbage", "Basic !!!***", None, False),
        Auth("basic-no-colon", "Basic " + b64(b"300%3A0.NA%2F88.123"), None, False),
        Auth("basic-invalid-utf8", "Basic " + b64(b"\xff\xfe:\xff"), None, False),
        Auth("basic-user-pct-ff", "Basic " + b64(b"300%3A0.NA/88.123%FF:secret"), None, False),
        Auth("basic-user-pct-ff-admin", "Basic " + b64(f"%FF{quote(admin)}:{secret}".encode()), None, False),
        Auth("basic-user-pct-00", "Basic " + b64(b"%00:secret"), None, False),
        Auth("basic-user-bad-escape", "Basic " + b64(b"%G1%:secret"), None, False),
        Auth("basic-unknown-identity", basic_header("300:0.NA/88.123.999", "secret"), None, False),
        Auth("basic-unknown-user", basic_header("nobody", "secret"), None, False),
        Auth("basic-not-a-handle", basic_header("300:no-slash", "secret"), None, False),
        Auth("basic-long-user", basic_header("300:0.NA/" + "8" * 5000, "s"), None, False),
        Auth("basic-empty-user", basic_header("", "secret"), None, False),
        Auth("basic-non-ascii-header", "Basic 密码".encode(), None, False),
        Auth("basic-latin1-header", b"Basic \xe9\xff", None, False),
        Auth("basic-unicode-b64", "Basic " + b64("用户:密码".encode()), None, False),
        Auth(
            "basic-huge-index",
            basic_header("99999999999999999999999:" + admin.partition(":")[2], secret),
            None,
            False,
        ),
        Auth("basic-negative-index", basic_header("-300:" + admin.partition(":")[2], "s"), None, False),
        Auth("bearer-empty", "Bearer ", None, False),
        Auth("bearer-garbage", "Bearer abc.def", None, False),
        Auth("bearer-non-ascii", "Bearer 令牌.签名".encode(), None, False),
        Auth("bearer-latin1", b"Bearer \xff\xfe.\x80", None, False),
        Auth("bearer-nul", "Bearer a\x00b", None, False),
        Auth("bearer-huge", "Bearer " + "A" * 7000, None, False),
        Auth(
            "bearer-forged-admin",
            "Bearer " + b64(b'{"u":1,"e":1,"n":"x","x":99999999999}') + ".sig",
            None,
            False,
        ),
        Auth("bearer-dots", "Bearer ....", None, False),
        Auth("bearer-pct", "Bearer %FF%00", None, False),
        Auth("digest", 'Digest username="x", realm="handle"', None, False),
        Auth("handle-scheme", 'Handle version="0", sessionId="x"', None, False),
        Auth("only-spaces", "   ", None, False),
        Auth("empty", "", None, False),
    ]
    return weighted(
        (6, st.just(NO_AUTH)),
        (14, st.sampled_from(good)),
        (1, st.sampled_from(wrong)),  # rare: a wrong secret costs the node a scrypt verification
        (2, st.sampled_from(odd)),
        (5, st.sampled_from(malformed)),
    )


# -- bodies ----------------------------------------------------------------------------------------


def value_data(world: World) -> st.SearchStrategy[Any]:
    """The `data` of a Handle value: strings, and every format with values of random shapes."""
    handle_ref = weighted((3, st.sampled_from(list(world.all_handles))), (1, short_text))
    reference = shaped({"handle": handle_ref, "index": mostly(st.integers(0, 400))})
    admin_value = shaped(
        {
            "handle": handle_ref,
            "index": mostly(st.sampled_from([200, 300, 0])),
            "permissions": mostly(st.sampled_from(["111111111111", "011111110011", "1", ""])),
        }
    )
    interface = shaped(
        {
            "query": mostly(st.booleans()),
            "admin": mostly(st.booleans()),
            "protocol": mostly(st.sampled_from(["HTTP", "HTTPS", "TCP", "UDP", "FTP"])),
            "port": mostly(st.sampled_from([80, 8000, 0, 70000, -1])),
        }
    )
    server = shaped(
        {
            "serverId": mostly(st.integers(0, 3)),
            "address": mostly(st.sampled_from(["127.0.0.1", "::1", "example.com", "", "999.1.1.1"])),
            "publicKey": shaped({"format": mostly(st.just("key")), "value": JUNK}),
            "interfaces": mostly(st.lists(interface, max_size=2)),
        }
    )
    site = shaped(
        {
            "version": mostly(st.just(1)),
            "protocolVersion": mostly(st.sampled_from(["2.10", "2.11", "9", "x.y"])),
            "serialNumber": mostly(st.integers(0, 5)),
            "primaryMask": shaped({"multiPrimary": mostly(st.booleans()), "primary": mostly(st.booleans())}),
            "hashOption": mostly(st.integers(0, 3)),
            "hashFilter": short_text,
            "attributes": mostly(st.lists(shaped({"name": short_text, "value": short_text}), max_size=2)),
            "servers": mostly(st.lists(server, max_size=2)),
        }
    )
    formatted = weighted(
        (1, shaped({"format": st.just("string"), "value": short_text})),
        (
            1,
            shaped(
                {"format": st.just("base64"), "value": st.sampled_from(["aGVsbG8=", "!!", "aGVsbG8", ""])}
            ),
        ),
        (1, shaped({"format": st.just("hex"), "value": st.sampled_from(["00ff", "0g", "abc", ""])})),
        (2, shaped({"format": st.just("admin"), "value": admin_value})),
        (2, shaped({"format": st.just("vlist"), "value": mostly(st.lists(reference, max_size=3))})),
        (2, shaped({"format": st.just("site"), "value": mostly(site)})),
        (1, shaped({"format": st.sampled_from(["key", "custom", "SITE", "Admin", ""]), "value": JUNK})),
        (1, shaped({"format": st.sampled_from(["custom", "json"]), "value": st.sampled_from(DEEP_VALUES)})),
    )
    return weighted(
        (3, short_text),
        (2, shaped({"format": st.just("string"), "value": short_text})),
        (
            2,
            st.sampled_from(
                ["https://example.com/p/1", "https://example.com/" + "u" * 3000, LONG_4BYTE, LONG_URL]
            ),
        ),
        (4, formatted),
    )


VALUE_TYPES = st.sampled_from(
    [
        *("URL", "URL", "EMAIL", "checksum", "URL.mobile", "url", "TEMPLATE", "类型"),
        *(
            "HS_ADMIN",
            "HS_VLIST",
            "HS_SITE",
            "HS_SITE.PREFIX",
            "HS_SECKEY",
            "HS_PUBKEY",
            "HS_SERV",
            "hs_admin",
        ),
        *("productName", "manufacturer", "productionDate", "x" * 129, "a\x00b"),
    ]
)
TTLS = st.sampled_from(
    [
        *(86400, 0, -1, 2**31, 2**63, "3600", "", "now", "١٢٣", "2026-11-21"),
        *("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:01"),
        *("9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z", "2026-11-21T08:00:00Z"),
        "2026-11-21T08:00:00+25:00",
    ]
)
INDEXES = st.sampled_from([1, 2, 3, 100, 200, 300, 1001, 2000, 2004, 2009, 0, -1, 2**31, 2**63, "1", "١"])


def handle_value(world: World) -> st.SearchStrategy[Any]:
    """One value as the Handle API takes it, mostly valid."""
    reference = shaped({"handle": st.sampled_from(list(world.all_handles)), "index": INDEXES})
    return shaped(
        {
            "index": mostly(INDEXES),
            "type": mostly(VALUE_TYPES),
            "data": value_data(world),
            "ttl": TTLS,
            "permissions": mostly(st.sampled_from(["1110", "1111", "1100", "0000", "111", "abcd"])),
            "references": mostly(st.lists(reference, max_size=2)),
            "timestamp": st.sampled_from(["2026-11-21T08:00:00Z", "x"]),
        },
        optional=frozenset({"ttl", "permissions", "references", "timestamp"}),
    )


TEMPLATE_ITEMS = [
    ("productName", 2000, "螺栓"),
    ("productModel", 2001, "M8"),
    ("batchNumber", 2002, "2026-11-A"),
    ("productionDate", 2003, "2026-11-21"),
    ("manufacturer", 2004, "某某机械"),
    ("creditCode", 2005, "91350100000000001X"),
    ("origin", 2006, "福州"),
    ("URL", 2009, "https://example.com/p/1"),
]


def enterprise_item(world: World, target: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """An item of the enterprise API `{handle, templateVersion, value}`, mostly valid."""

    def templated_value(item: tuple[str, int, str], text: str | None) -> dict[str, Any]:
        id_type, index, default = item
        data = {"format": "string", "value": default if text is None else text}
        return {"index": index, "type": id_type, "data": data}

    templated = st.builds(
        templated_value, st.sampled_from(TEMPLATE_ITEMS), weighted((3, st.none()), (1, short_text))
    )
    value = weighted((5, templated), (1, handle_value(world)))
    return shaped(
        {
            "handle": target,
            "templateVersion": mostly(st.sampled_from(["general-product-1.0"] * 3 + ["nope-9", ""])),
            "value": mostly(st.lists(value, min_size=0, max_size=4)),
        }
    )


def template_body(world: World) -> st.SearchStrategy[Any]:
    """A template as the SNMS v5 template API takes it, mostly valid."""
    metadata = shaped(
        {
            "type": mostly(st.sampled_from(["string", "number", "date", "bool"])),
            "minLength": mostly(st.sampled_from([0, 1, -1, 2**63])),
            "maxLength": mostly(st.sampled_from([10, 100, 0, 2**63, "9" * 30])),
        }
    )
    item = shaped(
        {
            "name": mostly(st.sampled_from(["产品名称", "颜色", "x" * 300])),
            "idType": mostly(st.sampled_from(["color", "weight", "HS_ADMIN", "URL", ""])),
            "idIndex": mostly(st.sampled_from([2010, 2011, 2000, 1001, 1, 2**63, "2012", "١"])),
            "required": mostly(st.booleans()),
            "state": mostly(st.sampled_from([0, 1, "1", 2])),
            "nameEn": mostly(st.sampled_from(["Color", "x" * 101])),
            "metadata": metadata,
        }
    )
    return shaped(
        {
            "prefix": mostly(prefixes(world)),
            "version": mostly(
                st.sampled_from(["fuzz-1.0", "fuzz-2.0", "general-product-1.0", "a" * 65, "-x"])
            ),
            "industryCodes": mostly(st.sampled_from([["C34"], [], "C34", [""], [1]])),
            "items": mostly(st.lists(item, max_size=3)),
        }
    )


def operator_bodies(world: World) -> dict[str, st.SearchStrategy[Any]]:
    """The bodies of the operator API's writes, mostly valid."""
    from tests.enterprise_helpers import credit_code

    contact = shaped(
        {
            "name": short_text,
            "phone": mostly(st.just("13800000000")),
            "email": mostly(st.just("a@example.com")),
        }
    )
    return {
        "admin-create-enterprise": shaped(
            {
                "name": mostly(st.sampled_from(["某某机械有限公司", "x" * 201, " "])),
                "creditCode": mostly(
                    weighted(
                        (3, st.integers(900, 10**9 - 1).map(credit_code)),
                        (1, st.sampled_from(["91350100000000001X", "123", "9" * 18])),
                    )
                ),
                "contact": mostly(contact),
            }
        ),
        "admin-allocate-prefix": shaped(
            {"prefix": mostly(prefixes(world) | st.sampled_from(["88.123.50", "88.123.51", "88.123.52.1"]))}
        ),
        "admin-prefix-state": shaped(
            {
                "state": mostly(st.sampled_from([0, 1, 2, 3, 4, 5, 6, -1, "1", 1.0, 2**63])),
                "secret": mostly(st.just("s" * 12)),
            },
            optional=frozenset({"secret"}),
        ),
        "admin-credentials": weighted(
            (3, st.just({})), (1, shaped({"secret": mostly(st.sampled_from(["s" * 12, "short"]))}))
        ),
        "admin-create-user": shaped(
            {
                "username": mostly(st.sampled_from(["fuzz-user", "fuzz-2", "a:b", "a/b", "用户", "x" * 65])),
                "password": mostly(st.sampled_from(["password-123", "short", "p" * 10_000])),
            }
        ),
        "admin-update-user": shaped(
            {
                "password": mostly(st.sampled_from(["password-456", "short"])),
                "disabled": mostly(st.sampled_from([True, False, "yes", 0])),
            }
        ),
    }


# -- whole requests --------------------------------------------------------------------------------


@dataclass
class Draft:
    """What a route strategy chooses: the rest (headers, credentials, encoding) comes after."""

    route: str
    method: str
    path: str
    query: str = ""
    body: Any = None  # a JSON-able object (with `Raw` and `Pairs` parts)
    limit: str = "small"  # which body limit applies: "small" or "batch"
    writes: tuple[str, ...] = ()


# Methods the routes do not have: known to HTTP parsers (they reach the router), and not.
ODD_METHODS = st.sampled_from(
    ["PATCH", "OPTIONS", "TRACE", "PROPFIND", "DELETE", "PUT", "POST", "HEAD", "GET"]
)
UNKNOWN_METHODS = st.sampled_from(["FOO", "get", "M" * 100])


def methods(*usual: str, clean: bool = False) -> st.SearchStrategy[str]:
    if clean:
        return st.sampled_from(usual)
    return weighted((24, st.sampled_from(usual)), (3, ODD_METHODS), (1, UNKNOWN_METHODS))


NUMERIC_SEGMENTS = st.sampled_from(
    [
        "1",
        "2",
        "3",
        "999",
        "0",
        "-1",
        "+1",
        " 1",
        "1_0",
        "١",
        "１",
        "1.0",
        "x",
        "%FF",
        "%00",
        "%20",
        *HUGE_INTS,
    ]
)


def route_drafts(world: World, clean: bool = False) -> dict[str, st.SearchStrategy[Draft]]:
    """A strategy per route (or group of routes) of every API. When `clean`, paths, methods and
    query strings are well-formed, so that the request gets as far as its body can take it."""
    tenants = world.tenants
    handle_names = handles(world, clean)
    target_handle = weighted((3, st.sampled_from(list(world.all_handles))), (1, handle_names))
    api_path = handle_path(handle_names, "/api/handles/", clean)
    proxy_path = handle_path(handle_names, "/", clean)
    numbers = st.sampled_from(["0", "1", "2", "10", "50"]) if clean else NUMBER_TEXT

    def query(params: dict[str, st.SearchStrategy[str]], max_pairs: int = 4) -> st.SearchStrategy[str]:
        return query_string(params, max_pairs, clean)

    handle_query = query(
        {
            "index": st.sampled_from(["1", "2", "100", "300", "various", "1001"]),
            "type": st.sampled_from(["URL", "EMAIL", "URL.", "HS_ADMIN", "HS_SECKEY", "hs_seckey"]),
            "auth": st.sampled_from(["true", "false", ""]),
            "publicOnly": st.sampled_from(["true", "false"]),
            "overwrite": st.sampled_from(["true", "false"]),
            "mintNewSuffix": st.sampled_from(["false", "false", "true"]),
        }
    )
    delete_query = query({"index": st.sampled_from(["1", "2", "100", "300"])}, 2)
    proxy_query = query(
        {
            "noredirect": st.sampled_from(["", "true", "false"]),
            "qr": st.sampled_from(["png", "svg", "gif"]),
            "urlappend": st.sampled_from(
                ["?a=1", "/x", "\r\nSet-Cookie: a=1", "%0d%0aX: 1", "#frag", "javascript:"]
            ),
            "index": st.sampled_from(["1", "2"]),
            "type": st.sampled_from(["URL", "EMAIL"]),
            "auth": st.sampled_from(["true", ""]),
        }
    )
    paging = {"page": numbers, "pageSize": numbers}
    list_query = query({"prefix": prefixes(world, clean), **paging}, 5)
    no_query = query({}, 2)
    search_query = query(
        {
            "URL": st.sampled_from(
                ["https://example.com/*", "*", "**", "*p/1", "https://example.com/A/0", "%", "_"]
            ),
            "checksum": st.sampled_from(["abc", "*"]),
            "EMAIL": st.just("a"),
            "url": st.just("*example*"),
            "limit": numbers,
            "page": numbers,
            "prefix": prefixes(world, clean),
        },
        5,
    )
    detail_query = query({"handle": target_handle}, 3)
    template_query = query(
        {"prefix": prefixes(world, clean), "version": st.sampled_from(["general-product-1.0", "fuzz-1.0"])}
    )
    audit_query = query(
        {
            **paging,
            "handle": target_handle,
            "enterprise": numbers,
            "from": st.sampled_from(
                ["2026-11-21T08:00:00Z", "0001-01-01T00:00:00+01:00", "x", "9999-12-31T23:59:59-01:00"]
            ),
            "to": st.sampled_from(["2026-11-22", "2026-11-21T08:00:00+14:00", ""]),
        },
        5,
    )
    paging_query = query(paging, 3)
    put_values = st.lists(handle_value(world), max_size=4)
    put_forms = st.integers(0, 7)
    put_body_handles = st.sampled_from(["same", "upper", "other"])
    item = enterprise_item(world, mostly(target_handle))
    batch_items = st.lists(item, max_size=4)
    batch_names = st.lists(mostly(target_handle), max_size=4)
    batch_forms = st.integers(0, 11)
    delete_body = shaped({"handle": mostly(target_handle)})
    token_body = shaped(
        {
            "username": mostly(st.sampled_from([t.username for t in tenants] + ["nobody", "FUZZ-A", ""])),
            "password": mostly(st.sampled_from([t.password for t in tenants] + ["wrong-pass", ""])),
        }
    )
    template = template_body(world)
    operator = operator_bodies(world)
    enterprise_ids = st.sampled_from([str(t.enterprise_id) for t in tenants] + ["4", "5"])
    user_ids = st.sampled_from([str(t.user_id) for t in tenants] + ["4", "5"])
    if not clean:
        enterprise_ids |= NUMERIC_SEGMENTS
        user_ids |= NUMERIC_SEGMENTS
    prefix_segments = prefixes(world, clean).map(lambda p: quote(p, safe=""))
    m = {
        key: methods(*verbs, clean=clean)
        for key, verbs in {
            "read": ("GET", "GET", "HEAD", "POST"),
            "get": ("GET",),
            "get-post": ("GET", "POST"),
            "get-head": ("GET", "HEAD"),
            "put": ("PUT",),
            "post": ("POST",),
            "delete": ("DELETE",),
            "data": ("POST", "PUT", "DELETE"),
            "template": ("GET", "POST", "PUT", "DELETE"),
            "proxy": ("GET", "GET", "HEAD"),
            "stray": ("GET", "POST", "PUT", "DELETE", "HEAD"),
        }.items()
    }

    @st.composite
    def resolve(draw: Any) -> Draft:
        path, _ = draw(api_path)
        return Draft("resolve", draw(m["read"]), path, draw(handle_query))

    @st.composite
    def put(draw: Any) -> Draft:
        path, handle = draw(api_path)
        values = draw(put_values)
        form = draw(put_forms)
        body: Any
        if form < 3:
            body = {"values": values}
        elif form < 5:
            body = values
        elif form == 5:
            body = values[0] if values else {}
        elif form == 6:
            named = {"same": handle, "upper": handle.upper(), "other": "x/y"}[draw(put_body_handles)]
            body = {"handle": named, "values": values}
        else:
            body = {"values": draw(JUNK)}
        return Draft("handle-put", draw(m["put"]), path, draw(handle_query), body, writes=(handle,))

    @st.composite
    def delete(draw: Any) -> Draft:
        path, handle = draw(api_path)
        return Draft("handle-delete", draw(m["delete"]), path, draw(delete_query), writes=(handle,))

    @st.composite
    def list_handles(draw: Any) -> Draft:
        return Draft("handle-list", draw(m["get-post"]), "/api/handles", draw(list_query))

    @st.composite
    def prefixes_route(draw: Any) -> Draft:
        path = draw(st.sampled_from(["/api/prefixes", "/api/stats"]))
        return Draft(
            "prefixes" if path == "/api/prefixes" else "stats", draw(m["get-post"]), path, draw(no_query)
        )

    @st.composite
    def search(draw: Any) -> Draft:
        path = draw(st.sampled_from(["/hrls/handles", "/hrls/handles/"]))
        return Draft("hrls", draw(m["get"]), path, draw(search_query))

    @st.composite
    def token(draw: Any) -> Draft:
        return Draft("token", draw(m["post"]), "/identity/token", draw(no_query), draw(token_body))

    @st.composite
    def data_one(draw: Any) -> Draft:
        verb = draw(m["data"])
        body = draw(delete_body if verb == "DELETE" else item)
        named = body.get("handle") if isinstance(body, dict) else None
        writes = (named,) if isinstance(named, str) else ()
        return Draft("data-one", verb, "/identityv2/data", draw(no_query), body, writes=writes)

    @st.composite
    def detail(draw: Any) -> Draft:
        return Draft("data-detail", draw(m["get"]), "/identityv2/data/detail", draw(detail_query))

    @st.composite
    def batch(draw: Any) -> Draft:
        route, verb, path = draw(
            st.sampled_from(
                [
                    ("batch-create", "post", "/identityv2/data/batchCreate"),
                    ("batch-update", "put", "/identityv2/data/batchUpdate"),
                    ("batch-delete", "delete", "/identityv2/data/batchDelete"),
                ]
            )
        )
        items: Any = draw(batch_names if route == "batch-delete" else batch_items)
        writes = tuple(
            named
            for named in (i.get("handle") if isinstance(i, dict) else i for i in items)
            if isinstance(named, str)
        )
        form = draw(batch_forms)
        if form == 9:
            items = {"data": items}
        elif form == 10:
            items = {"items": items}
        elif form == 11:  # more than a batch may hold
            items = [f"{tenants[2].prefix}/many-{i}" for i in range(2001)]
        return Draft(route, draw(m[verb]), path, draw(no_query), items, "batch", writes)

    @st.composite
    def templates(draw: Any) -> Draft:
        verb = draw(m["template"])
        body = draw(template) if verb in ("POST", "PUT") else None
        named = body.get("prefix") if isinstance(body, dict) else None
        writes = (f"prefix:{named}",) if verb in ("POST", "PUT") and isinstance(named, str) else ()
        return Draft("template", verb, "/snms/api/v5/template", draw(template_query), body, writes=writes)

    admin_routes = st.sampled_from(
        [
            ("admin-create-enterprise", "post", "/admin/enterprises"),
            ("admin-list-enterprises", "get", "/admin/enterprises"),
            ("admin-get-enterprise", "get", "/admin/enterprises/{e}"),
            ("admin-allocate-prefix", "post", "/admin/enterprises/{e}/prefixes"),
            ("admin-create-user", "post", "/admin/enterprises/{e}/users"),
            ("admin-update-user", "put", "/admin/enterprises/{e}/users/{u}"),
            ("admin-prefix-state", "put", "/admin/prefixes/{p}/state"),
            ("admin-credentials", "post", "/admin/prefixes/{p}/credentials"),
            ("admin-audit", "get", "/admin/audit"),
        ]
    )

    @st.composite
    def admin(draw: Any) -> Draft:
        route, verb, shape = draw(admin_routes)
        path = shape.format(e=draw(enterprise_ids), u=draw(user_ids), p=draw(prefix_segments))
        query = draw(audit_query if route == "admin-audit" else paging_query)
        body = draw(operator[route]) if verb != "get" else None
        return Draft(route, draw(m[verb]), path, query, body)

    @st.composite
    def probes(draw: Any) -> Draft:
        path = draw(st.sampled_from(["/healthz", "/readyz", "/metrics"]))
        return Draft("probe", draw(m["get-head"]), path, draw(no_query))

    @st.composite
    def proxy(draw: Any) -> Draft:
        path, _ = draw(proxy_path)
        if draw(one_in(8)):
            path += ".png"
        return Draft("proxy", draw(m["proxy"]), path, draw(proxy_query))

    @st.composite
    def home(draw: Any) -> Draft:
        return Draft("home", draw(m["get-head"]), "/", draw(no_query))

    stray_paths = st.sampled_from(
        [
            *("/api", "/api/", "/api/handles/", "/api/handles//", "/api/handles/%2F"),
            "/%61pi/handles/" + quote(tenants[0].prefix) + "/ABC-0001",
            *("/api/handles/../admin/audit", "/api/handles/%2e%2e/%2e%2e/admin/audit"),
            *(
                "/admin",
                "/admin/",
                "/admin/enterprises/",
                "/admin/enterprises/1/",
                "/admin/enterprises/1/users/",
            ),
            *("/admin/prefixes//state", "/admin/%61udit", "/identityv2", "/identityv2/data/"),
            *("/identityv2/data/detail/", "/snms/api/v5/template/", "/hrls", "/hrls/handles//"),
            *("//api/handles/88.123/x", "/healthz/", "/metrics%00", "/%FF", "/%00", "/%0A", "/a%0Ab/c"),
            *("/api/handles/%0A" + tenants[0].prefix + "/ABC-0001", "/admin/audit%0A"),
            "/" + "a" * 5000 + "/b",
            f"/{tenants[0].prefix}/" + "%F0%A0%80%8B" * 300,
            *("/favicon.ico", "/robots.txt", "/.env"),
            f"/api/handles/{tenants[0].prefix}/ABC-0001/../../../../etc/passwd",
        ]
    )
    absolute = one_in(10)

    @st.composite
    def stray(draw: Any) -> Draft:
        """Paths next to the routes: prefixes of them, dot segments, escapes in their names."""
        path = draw(stray_paths)
        if draw(absolute):
            path = f"http://{world.host}{path}"
        return Draft("stray", draw(m["stray"]), path, draw(no_query))

    return {
        "resolve": resolve(),
        "handle-put": put(),
        "handle-delete": delete(),
        "handle-list": list_handles(),
        "prefixes": prefixes_route(),
        "hrls": search(),
        "token": token(),
        "data-one": data_one(),
        "data-detail": detail(),
        "batch": batch(),
        "template": templates(),
        "admin": admin(),
        "probe": probes(),
        "proxy": proxy(),
        "home": home(),
        "stray": stray(),
    }


# The routes whose handlers read the body, by method (a route asked with another method may
# answer without reading it).
BODY_READERS = {
    "handle-put": ("PUT",),
    "token": ("POST",),
    "data-one": ("POST", "PUT", "DELETE"),
    "batch-create": ("POST",),
    "batch-update": ("PUT",),
    "batch-delete": ("DELETE",),
    "template": ("POST", "PUT"),
    "admin-create-enterprise": ("POST",),
    "admin-allocate-prefix": ("POST",),
    "admin-create-user": ("POST",),
    "admin-update-user": ("PUT",),
    "admin-prefix-state": ("PUT",),
    "admin-credentials": ("POST",),
}
ROUTE_WEIGHTS = {
    "resolve": 8,
    "handle-put": 10,
    "handle-delete": 3,
    "handle-list": 2,
    "prefixes": 2,
    "hrls": 3,
    "token": 2,
    "data-one": 6,
    "data-detail": 2,
    "batch": 4,
    "template": 3,
    "admin": 7,
    "probe": 1,
    "proxy": 6,
    "home": 1,
    "stray": 2,
}

CONTENT_TYPES = st.sampled_from(
    [
        *("application/json; charset=utf-8", "APPLICATION/JSON", "application/json;charset=latin-1"),
        *("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"),
        *("", "application/jsonx", "*/*", "application/json\x00"),
    ]
)


EVIL_HOST = "evil.example"


def host_headers(world: World) -> st.SearchStrategy[list[tuple[str, str | bytes]]]:
    odd = [
        [("Host", "")],
        [("Host", EVIL_HOST)],
        [("Host", f"{EVIL_HOST}:1"), ("Host", world.host)],
        [("Host", f'{EVIL_HOST}"><script>alert(1)</script>')],
        [("Host", "a" * 300)],
        [("Host", "[::1]:80")],
        [("Host", "127.0.0.1:99999999999999999999")],
        [("Host", "host with space")],
        [("Host", "例子.测试")],
        [("Host", b"\xff\xfe")],
        [("Host", f"127.0.0.1@{EVIL_HOST}")],
    ]
    return weighted((30, st.just([("Host", world.host)])), (3, st.sampled_from(odd)), (1, st.just([])))


EXTRA_HEADERS = st.sampled_from(
    [
        ("Accept", "application/json"),
        ("Accept", "text/html"),
        ("Accept", "*/*;q=0.1, " + "x/y, " * 500),
        ("Accept-Encoding", "gzip, br"),
        ("Accept-Language", "zh-CN"),
        ("User-Agent", "pyhandle/1.5.0"),
        ("User-Agent", "Mozilla/5.0 (Linux; Android 14) 微信"),
        ("Connection", "close"),
        ("Connection", "keep-alive"),
        ("Connection", "upgrade"),
        ("Upgrade", "websocket"),
        ("Expect", "100-continue"),
        ("Expect", "nonsense"),
        ("X-Resolver-Hop", "1"),
        ("X-Forwarded-For", "1.2.3.4, ::1, garbage"),
        ("X-Forwarded-Proto", "javascript"),
        ("Forwarded", "for=unknown;proto=https"),
        ("Cookie", "a=" + "b" * 7000),
        ("Range", "bytes=0-1"),
        ("If-None-Match", "*"),
        ("Content-Encoding", "gzip"),
        ("Content-Encoding", "br"),
        ("X-Huge", "v" * 8000),
        ("X-Unicode", "值😀"),
        ("X-Latin1", b"\xe9\xe8"),
        ("Origin", "https://evil.example"),
    ]
)
BODY_BYTES: tuple[tuple[str, bytes | None], ...] = (
    ("empty", b""),
    ("null", b"null"),
    ("truncated", b"{"),
    ("empty array", b"[]"),
    ("empty object", b"{}"),
    ("invalid UTF-8 in a string", b'{"a":"\xff\xfe"}'),
    ("UTF-8 BOM", b"\xef\xbb\xbf[]"),
    ("UTF-16", '[{"index":1}]'.encode("utf-16")),
    ("form encoded", b"index=1&type=URL"),
    ("NUL bytes", b"\x00" * 64),
    ("nested 300 deep", encode_json(deep(300))),
    ("nested 5000 deep", encode_json(deep(5000))),
    ("a 4-byte string", b'"' + "𠀋".encode() * 1000 + b'"'),
    ("a 5000-digit number", b"9" * 5000),
    ("100k open brackets", b"[" * 100_000),
    ("over the limit, not JSON", None),
    ("JSON over the limit", None),
    ("cut in half", None),
    ("trailing garbage", None),
    ("single quotes", None),
    ("padded over the limit", None),
)


def body_bytes(note: str, body: Any, limit: int) -> bytes:
    """The bytes of one of BODY_BYTES (those that depend on the draft's body or limit)."""
    if note == "over the limit, not JSON":
        return b"x" * (limit + 1)
    if note == "JSON over the limit":
        return b"[" + b'"a",' * (limit // 4) + b'"a"]'
    raw = encode_json(body) if body is not None else b'{"a":1}'
    if note == "padded over the limit":  # still valid JSON: only the size is wrong
        return raw + b" " * max(1, limit + 1 - len(raw))
    if note == "cut in half":
        return raw[: len(raw) // 2]
    if note == "trailing garbage":
        return raw + b"garbage"
    return raw.replace(b'"', b"'")


def right_credentials(world: World) -> dict[str, st.SearchStrategy[Auth]]:
    """Good credentials of the principals a route is for: the node administrator for the operator
    API, prefix administrators for Handle API writes, enterprise users for the enterprise API."""
    admin = Auth("admin-basic", basic_header(world.admin_user, world.admin_secret), "admin", True)
    prefix_admins = [
        Auth(f"{t.name}-prefix-admin", basic_header(f"300:0.NA/{t.prefix}", t.secret), t.name, True)
        for t in world.tenants
    ]
    users = [Auth(f"{t.name}-bearer", f"Bearer {t.token}", t.name, True) for t in world.tenants] + [
        Auth(f"{t.name}-user-basic", basic_header(t.username, t.password), t.name, True)
        for t in world.tenants
    ]
    return {
        "admin": st.just(admin),
        "handle": st.sampled_from([admin, admin, *prefix_admins]),
        "enterprise": st.sampled_from([admin, *users, *users]),
    }


def wanted_principal(route: str) -> str | None:
    if route.startswith("admin-") or route == "stats":
        return "admin"
    if route in ("handle-put", "handle-delete", "handle-list", "hrls", "resolve"):
        return "handle"
    if route in ("data-one", "data-detail", "template") or route.startswith("batch-"):
        return "enterprise"
    return None


READ_BACKS = ("api", "api-auth", "proxy", "proxy-noredirect", "qr", "detail")


def read_back(world: World, handle: str, how: str) -> FuzzRequest:
    """A plain read of a handle that a request just wrote, to see that what was stored renders."""
    admin = Auth("admin-basic", basic_header(world.admin_user, world.admin_secret), "admin", True)
    path, query, auth = "/api/handles/" + quote(handle, safe="/:"), "", NO_AUTH
    if how == "api-auth":
        query, auth = "auth=true", admin
    elif how in ("proxy", "proxy-noredirect"):
        path, query = "/" + quote(handle, safe="/:"), "noredirect" if how == "proxy-noredirect" else ""
    elif how == "qr":
        path = "/" + quote(handle, safe="/:") + ".png"
    elif how == "detail":
        path, query, auth = "/identityv2/data/detail", "handle=" + quote(handle, safe=""), admin
    request = FuzzRequest(f"read-back-{how}", "GET", path, query, [("Host", world.host)], b"", auth)
    request.notes.update(limit=world.max_body_bytes, reads_body=False)
    return request


def http_exchanges(world: World) -> st.SearchStrategy[list[FuzzRequest]]:
    """A request, and after a write, sometimes reads of what it wrote."""
    single = http_requests(world)
    backs = st.lists(st.sampled_from(READ_BACKS), max_size=2, unique=True)

    @st.composite
    def build(draw: Any) -> list[FuzzRequest]:
        request = draw(single)
        written = [h for h in request.writes if not h.startswith("prefix:") and request.method != "GET"]
        if not written or not draw(one_in(2)):
            return [request]
        return [request, *(read_back(world, written[0], how) for how in draw(backs))]

    return build()


def http_requests(world: World) -> st.SearchStrategy[FuzzRequest]:
    """One request to one of the routes, with headers, credentials and a body encoding."""
    drafts = {False: route_drafts(world), True: route_drafts(world, clean=True)}
    cleanliness = st.integers(0, 9).map(lambda i: i >= 6)  # 4 in 10 well-formed up to the body
    right = right_credentials(world)
    routes = st.sampled_from([name for name, weight in ROUTE_WEIGHTS.items() for _ in range(weight)])
    auths = credentials(world)
    hosts = host_headers(world)
    content_types = weighted((15, st.just("application/json")), (1, CONTENT_TYPES))
    extra_headers = weighted(
        (3, st.just([])), (1, st.lists(EXTRA_HEADERS, min_size=1, max_size=3, unique_by=lambda h: h[0]))
    )
    versions = weighted((40, st.just("HTTP/1.1")), (1, st.just("HTTP/1.0")))
    framings = weighted((80, st.none()), (1, st.sampled_from(FRAMING_KINDS)))
    body_kinds = st.integers(0, 39)
    odd_bodies = st.sampled_from(BODY_BYTES)
    chunk_sizes = st.lists(st.integers(1, 70_000), min_size=1, max_size=4)

    @st.composite
    def build(draw: Any) -> FuzzRequest:
        clean = draw(cleanliness)
        draft: Draft = draw(drafts[clean][draw(routes)])
        wanted = wanted_principal(draft.route)
        limit = world.max_batch_body_bytes if draft.limit == "batch" else world.max_body_bytes
        note = ""
        kind = 0 if clean else draw(body_kinds)
        if draft.body is not None and kind < 34:
            body = encode_json(draft.body)
        elif draft.body is None and kind < 36:
            body = b""
        else:
            note, fixed = draw(odd_bodies)
            body = fixed if fixed is not None else body_bytes(note, draft.body, limit)
        headers: list[tuple[str, str | bytes]] = [("Host", world.host)] if clean else list(draw(hosts))
        if body or draft.method in ("POST", "PUT", "DELETE") or draw(one_in(20)):
            content_type = "application/json" if clean else draw(content_types)
            if content_type or draw(st.booleans()):
                headers.append(("Content-Type", content_type))
        if not clean:
            headers += draw(extra_headers)
            if draw(one_in(100)):  # very many headers
                headers += [(f"X-Many-{i}", "v") for i in range(120)]
        chunks = tuple(draw(chunk_sizes)) if body and draw(one_in(6)) else None
        use_right = wanted is not None and (clean or draw(st.booleans()))
        auth = draw(right[wanted] if use_right and wanted is not None else auths)
        request = FuzzRequest(
            route=draft.route,
            method=draft.method,
            path=draft.path,
            query=draft.query,
            headers=headers,
            body=body,
            auth=auth,
            chunks=chunks,
            version="HTTP/1.1" if clean else draw(versions),
            framing=None if clean else draw(framings),
            body_note=note,
            writes=draft.writes,
        )
        request.notes.update(
            limit=limit, clean=clean, reads_body=draft.method in BODY_READERS.get(draft.route, ())
        )
        return guard(world, request)

    return build()


# -- keeping the run's world intact ----------------------------------------------------------------


def guard(world: World, request: FuzzRequest) -> FuzzRequest:
    """Requests that would, with good credentials, remove what the rest of the run relies on are
    sent with wrong credentials instead (the sacrificial tenant may be damaged by anyone).

    Protected: the node administrator's record `0.NA/<node prefix>`, the prefix records and users of
    the tenants that are not sacrificial, and their prefixes' states and secrets.
    """
    if not request.auth.valid and request.auth.valid is not None:
        return request
    protected = [t for t in world.tenants if not t.sacrificial]
    keys = {f"0.na/{world.node_prefix}"} | {f"0.na/{t.prefix}" for t in protected}
    touched = {_handle_key(h) for h in request.writes}
    danger = bool(keys & touched) and request.method not in ("GET", "HEAD")
    if request.route.startswith("admin-") and request.method not in ("GET", "HEAD"):
        segments = [_unquote_lenient(part) for part in request.path.split("?")[0].split("/")]
        if len(segments) > 3 and segments[2] == "enterprises" and "users" in segments:
            enterprise = _as_int(segments[3])
            danger = danger or any(enterprise == t.enterprise_id for t in protected)
        if len(segments) > 3 and segments[2] == "prefixes":
            danger = danger or _handle_key("0.NA/" + segments[3]) in keys
    if request.route == "handle-put" and "mintNewSuffix" in request.query:
        danger = danger or any(_handle_key(h).startswith("0.na/") for h in request.writes)
    if danger:
        request.auth = Auth(
            "guarded-wrong-secret", basic_header(world.admin_user, "not-the-secret"), None, False
        )
        request.notes["guarded"] = True
    return request


def _as_int(text: str) -> int | None:
    """The integer Python's int() (as the operator API uses it) reads in a path segment."""
    try:
        return int(text)
    except ValueError:
        return None


def _unquote_lenient(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text, errors="replace")


def _handle_key(handle: str) -> str:
    """What the node would fold a handle to (scheme stripped, ASCII lower-cased)."""
    text = handle
    for scheme in ("info:hdl/", "urn:hdl:", "hdl:", "doi:"):
        if text[: len(scheme)].lower() == scheme:
            text = text[len(scheme) :]
            break
    return text.lower() if text.isascii() else "".join(c.lower() if c.isascii() else c for c in text)
