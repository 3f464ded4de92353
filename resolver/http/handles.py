"""The Handle.Net HTTP JSON API: `/api/handles/...`, `/api/handles?prefix=`, `/api/prefixes`."""

from __future__ import annotations

import time
from urllib.parse import unquote

import orjson
from aiohttp import web
from multidict import MultiMapping

from resolver.cache import Entry
from resolver.core.errors import RC, HandleError
from resolver.core.handles import HandleName, fold, parse_handle, strip_scheme
from resolver.core.permissions import Identity
from resolver.core.values import parse_int, select, values_from_body
from resolver.http.bodies import check_json, read_body
from resolver.http.encoded import EncodedResponse
from resolver.http.errors import HANDLES_PATH, JSON_TYPE, failure, mapped, method_not_allowed
from resolver.http.keys import (
    AUTHENTICATOR,
    CONFIG,
    DAILY,
    LOOKUP,
    METRICS,
    RATE_LIMITER,
    RECURSIVE,
    REGISTRY,
)
from resolver.http.paging import page_and_size
from resolver.services.statistics import standing
from resolver.upstream.recursion import HOP_HEADER

RESOLVE_ROUTE = "/api/handles/{handle}"
_HIT_HEAD = b'{"responseCode":1,"handle":'
_JSON_HEADERS = {"Content-Type": "application/json"}


def _protocol(message: str) -> HandleError:
    return HandleError(RC.PROTOCOL_ERROR, message)


def sent_handle_text(request: web.Request) -> str:
    """The handle of the path, percent-decoded as UTF-8 (malformed UTF-8 is refused)."""
    raw = request.rel_url.raw_path[len(HANDLES_PATH) :]
    if "%" not in raw:
        return raw
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise HandleError(RC.INVALID_HANDLE, "the handle is not valid UTF-8") from None


def flag(query: MultiMapping[str], name: str, default: bool) -> bool:
    """A boolean query parameter: absent -> default; `true`/`false`; a bare `?name` is true."""
    if name not in query:
        return default
    text = query[name].strip().lower()
    if text in ("", "true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise _protocol(f"{name} must be true or false")


def indexes_of(query: MultiMapping[str], max_index: int) -> frozenset[int]:
    """The `index=` parameters as integers."""
    try:
        return frozenset(parse_int(v, "index", 0, max_index) for v in query.getall("index", ()))
    except HandleError as exc:
        raise _protocol(exc.message) from None


async def identity_of(request: web.Request, *, required: bool) -> Identity | None:
    """The authenticated caller, None for anonymous reads; rc 402 when required and missing, 429
    past the failed-authentication limits of the client address."""
    header = request.headers.get("Authorization")
    if header is None:
        if required:
            raise HandleError(
                RC.AUTHENTICATION_NEEDED,
                "this operation needs authentication (Basic index:handle, or Authorization: Handle with a session)",
            )
        return None
    if header.lstrip()[:7].lower() == "handle ":
        from resolver.http.sessions import handle_scheme

        return await handle_scheme(request, header)
    return await request.app[AUTHENTICATOR].authenticate(header, request.app[RATE_LIMITER].throttle(request))


def _answer(sent: str, entry: Entry) -> EncodedResponse:
    """The public answer of a cached handle, echoing the handle as the client sent it."""
    return EncodedResponse(_HIT_HEAD + orjson.dumps(sent) + entry.tail)


def json_response(body: dict[str, object], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=_JSON_HEADERS)


async def resolve(request: web.Request) -> web.StreamResponse:
    """GET (and POST) /api/handles/{handle}: the values of a handle.

    The hot path of the node: it maps its own errors and counts itself (no wrapper coroutine).
    """
    started = time.perf_counter()
    app = request.app
    metrics = app[METRICS]
    key = ""
    try:
        sent = sent_handle_text(request)
        plain = not request.rel_url.raw_query_string and "Authorization" not in request.headers
        if plain:
            # An anonymous, unfiltered resolution: the answer is the cache entry's encoded bytes.
            lookup = app[LOOKUP]
            key = fold(strip_scheme(sent))
            if lookup.cache.trusted:
                entry = lookup.cache.get(key)
                if entry is not None and entry.record is not None:
                    metrics.outcomes["hit"] += 1
                    app[DAILY].resolved(key.partition("/")[0])
                    metrics.request(RESOLVE_ROUTE, request.method, 200, time.perf_counter() - started)
                    return _answer(sent, entry)
            # A miss (checked like any other request), answered by one coalesced lookup.
            app[RATE_LIMITER].check(request, resolution=True)
            entry = await app[REGISTRY].entry(parse_handle(sent, app[CONFIG].limits))
            response: web.StreamResponse = _answer(sent, entry)
        else:
            response = await _resolve(request, sent)
    except HandleError as exc:
        if exc.rc == RC.SERVER_NOT_RESPONSIBLE and app[RECURSIVE] is not None:
            response = await _recursive(request, sent)
        else:
            response = failure(request, exc)
    except Exception as exc:
        response = failure(request, exc)
    status = response.status
    metrics.outcomes["miss" if status == 200 else "not_found" if status == 404 else "refused"] += 1
    if status in (200, 404):
        prefix = (key or fold(strip_scheme(sent))).partition("/")[0]
        if status == 200:
            app[DAILY].resolved(prefix)
        else:
            app[DAILY].not_found(prefix)
    metrics.request(RESOLVE_ROUTE, request.method, status, time.perf_counter() - started)
    return response


async def _recursive(request: web.Request, sent: str) -> web.StreamResponse:
    """A handle of another node, resolved through the top-level node (only with --recursive)."""
    recursive = request.app[RECURSIVE]
    assert recursive is not None
    metrics = request.app[METRICS]
    try:
        if HOP_HEADER in request.headers:
            raise HandleError(
                RC.SERVER_NOT_RESPONSIBLE, "this request already came through recursion; not recursing again"
            )
        if "Authorization" in request.headers:
            raise HandleError(RC.SERVER_NOT_RESPONSIBLE, "credentials are not passed on to other nodes")
        limits = request.app[CONFIG].limits
        name = parse_handle(sent, limits)
        # the filters are applied here to the whole record; nothing of the query is passed on
        indexes, types = indexes_of(request.query, limits.max_index), request.query.getall("type", [])
        body = await recursive.resolve(name, sent, indexes, types)
    except HandleError as exc:
        metrics.recursive.labels("failed" if exc.status in (502, 504) else "not_found").inc()
        return failure(request, exc)
    metrics.recursive.labels("ok").inc()
    return web.Response(body=body, headers=_JSON_HEADERS)


async def _resolve(request: web.Request, sent: str) -> web.Response:
    config = request.app[CONFIG]
    registry = request.app[REGISTRY]
    request.app[RATE_LIMITER].check(request, resolution=True)
    name = parse_handle(sent, config.limits)
    query = request.query
    indexes = indexes_of(query, config.limits.max_index)
    types = query.getall("type", [])
    fresh = flag(query, "auth", False)
    identity = await identity_of(request, required=False)
    if flag(query, "publicOnly", identity is None):
        identity = None
    record = await registry.read(name, fresh=fresh)
    values = select(await registry.readable_values(name, record, identity), indexes, types)
    if not values and (indexes or types):
        return json_response({"responseCode": RC.VALUES_NOT_FOUND, "handle": sent, "values": []})
    return json_response({"responseCode": 1, "handle": sent, "values": values})


def _parse_body(request: web.Request, raw: bytes) -> object:
    if request.content_type != JSON_TYPE:
        raise _protocol("a PUT needs Content-Type: application/json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _protocol(f"the body is not valid JSON (UTF-8): {exc}") from None
    check_json(raw, body)
    return body


async def put(request: web.Request) -> web.Response:
    """PUT /api/handles/{handle}: create or replace, or with `?index=` add or replace values."""
    request.app[RATE_LIMITER].check(request)
    config = request.app[CONFIG]
    registry = request.app[REGISTRY]
    query = request.query
    mint = flag(query, "mintNewSuffix", False)
    sent = sent_handle_text(request)
    name = parse_handle(sent, config.limits, allow_empty_suffix=mint)
    if mint:
        name = registry.mint(name)
        sent = name.text
    registry.check_responsible(name)
    # the body first, the credentials after it arrived: a secret rotated while a client trickles
    # its body no longer writes
    raw = await read_body(request, config.limits.max_body_bytes)
    identity = await identity_of(request, required=True)
    assert identity is not None
    overwrite = flag(query, "overwrite", True) and not mint
    body = _parse_body(request, raw)
    raw_values = values_from_body(body, name.key, config.limits)
    if "index" in query:
        various = [v for v in query.getall("index") if v.strip().lower() == "various"]
        indexes = None if various else indexes_of(query, config.limits.max_index)
        await registry.put_values(name, raw_values, indexes, identity, overwrite=overwrite)
        return json_response({"responseCode": 1, "handle": sent}, status=200 if overwrite else 201)
    try:
        created = await registry.create_or_replace(name, raw_values, identity, overwrite=overwrite)
    except HandleError:
        request.app[METRICS].registered("handle", "single", [False])
        raise
    if created:
        request.app[METRICS].registered("handle", "single", [True])
        request.app[DAILY].registered(name.prefix)
    return json_response(
        {"responseCode": 1, "handle": sent}, status=201 if created and not overwrite else 200
    )


async def delete(request: web.Request) -> web.Response:
    """DELETE /api/handles/{handle}: delete the handle, or with `?index=` some of its values."""
    request.app[RATE_LIMITER].check(request)
    config = request.app[CONFIG]
    registry = request.app[REGISTRY]
    sent = sent_handle_text(request)
    name: HandleName = parse_handle(sent, config.limits)
    registry.check_responsible(name)
    identity = await identity_of(request, required=True)
    assert identity is not None
    if "index" in request.query:
        indexes = indexes_of(request.query, config.limits.max_index)
        await registry.delete_values(name, indexes, identity)
    else:
        await registry.delete_handle(name, identity)
    return json_response({"responseCode": 1, "handle": sent})


async def list_handles(request: web.Request) -> web.Response:
    """GET /api/handles?prefix=P&page=N&pageSize=M: the handles under a prefix."""
    request.app[RATE_LIMITER].check(request)
    config = request.app[CONFIG]
    query = request.query
    prefix = query.get("prefix")
    if not prefix:
        raise _protocol("give the prefix to list: /api/handles?prefix=...")
    identity = await identity_of(request, required=True)
    assert identity is not None
    limit = config.limits.max_page_size
    try:
        page, page_size = page_and_size(query, size_key="pageSize", default=limit, smallest=0, largest=limit)
    except HandleError as exc:
        raise _protocol(exc.message) from None
    total, handles = await request.app[REGISTRY].list_handles(prefix, page, page_size, identity)
    body: dict[str, object] = {"responseCode": 1, "prefix": prefix, "totalCount": str(total)}
    if page_size:
        body.update(page=page, pageSize=page_size, handles=handles)
    return json_response(body)


async def stats(request: web.Request) -> web.Response:
    """GET /api/stats (node administrator): the node and each prefix against the thresholds."""
    identity = await identity_of(request, required=True)
    if not request.app[REGISTRY].is_node_admin(identity):
        raise HandleError(RC.INSUFFICIENT_PERMISSIONS, "the statistics are for the node administrator")
    report = await standing(request.app[REGISTRY].store)
    return json_response({"responseCode": 1, **report.to_json()})


async def prefixes(request: web.Request) -> web.Response:
    """GET /api/prefixes: the prefixes homed on this node."""
    return json_response({"responseCode": 1, "prefixes": await request.app[REGISTRY].prefixes()})


def add_routes(app: web.Application) -> None:
    """Register the Handle API routes."""
    for path, handler in (("/api/handles", list_handles), ("/api/prefixes", prefixes), ("/api/stats", stats)):
        resource = app.router.add_resource(path)
        resource.add_route("GET", mapped(handler))
        resource.add_route("POST", mapped(handler))
        resource.add_route("*", method_not_allowed("GET, POST"))
    resource = app.router.add_resource(r"/api/handles/{handle:[\s\S]+}")
    resource.add_route("GET", resolve)
    resource.add_route("HEAD", resolve)
    resource.add_route("POST", resolve)
    resource.add_route("PUT", mapped(put))
    resource.add_route("DELETE", mapped(delete))
    resource.add_route("*", method_not_allowed("GET, HEAD, POST, PUT, DELETE"))
