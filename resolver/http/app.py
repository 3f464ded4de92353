"""The application factory: every resource is a cleanup context that closes what it opened."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from resolver.cache import Lookup, ResolutionCache
from resolver.config import Config
from resolver.console import pages as console
from resolver.http import (
    enterprise_api,
    handles,
    health,
    native_http,
    openapi,
    operator_api,
    proxy,
    search,
    sessions,
)
from resolver.http.edge import edge
from resolver.http.encoded import use_server_header
from resolver.http.keys import (
    ACCOUNTS,
    AUTHENTICATOR,
    BATCHES,
    CONFIG,
    CONSOLE_OPERATORS,
    DAILY,
    HANDLE_SESSIONS,
    LOOKUP,
    METRICS,
    NATIVE,
    NODE_KEYS,
    OPERATORS,
    RATE_LIMITER,
    RECURSIVE,
    REGISTRY,
    SCHEMA_VERSION,
    STORE,
    TEMPLATES,
    UPLOADS,
    UPSTREAM,
)
from resolver.http.ratelimit import RateLimiter
from resolver.keys import Signers
from resolver.metrics import NodeMetrics
from resolver.portal import pages
from resolver.services.accounts import Accounts
from resolver.services.authentication import Authenticator
from resolver.services.batches import Batches
from resolver.services.bootstrap import TOKEN_KEY, ensure_node_admin, ensure_node_key
from resolver.services.console_operators import ConsoleOperators
from resolver.services.enterprises import Operators
from resolver.services.handle_sessions import SESSION_KEY, HandleSessions
from resolver.services.record_signing import RecordSigning
from resolver.services.registry import Registry
from resolver.services.seckeys import SecretKeys, load_seal
from resolver.services.statistics import DailyCounter, keep_flushing
from resolver.services.templates import TemplateRegistry
from resolver.services.tokens import Tokens
from resolver.services.uploads import Uploads
from resolver.store.coherence import Coherence
from resolver.store.connections import wait_for_database
from resolver.store.feed import follow_changes
from resolver.store.handles import HandleStore
from resolver.store.migrations import migrate
from resolver.store.open import open_store
from resolver.upstream.recursion import RecursiveResolver
from resolver.upstream.toplevel import OutboxStatus, make_upstream, run_deliverer

log = logging.getLogger(__name__)


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait until it has finished."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _after_the_first(action: Callable[[], None]) -> Callable[[], None]:
    """`action` on every call but the first (the change feed's first connect clears an empty
    cache; only a reconnect means changes may have been missed)."""
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            action()

    return call


async def database(app: web.Application) -> AsyncIterator[None]:
    """Migrate, bootstrap the node administrator, open the pool and the readers."""
    config = app[CONFIG]
    assert config.dsn is not None
    conn = await wait_for_database(config.dsn)
    try:
        app[SCHEMA_VERSION] = await migrate(conn)
    finally:
        await conn.close()
    async with open_store(config) as store:
        async for _ in _services(app, config, store):
            yield


async def _services(app: web.Application, config: Config, store: HandleStore) -> AsyncIterator[None]:
    """The cache, the lookup and the services over `store`, on the app for as long as it runs."""
    cache = ResolutionCache(config.cache)
    lookup = Lookup(cache, store.fetch_many, max_batches=config.reader_connections)
    lookup.on_change = store.changed
    store.coherence = Coherence(config.coherence_wait)
    cache.on_clear = _after_the_first(lambda: store.changed(None))
    try:
        secret_keys = SecretKeys(await load_seal(config.keys_path, store))
        await ensure_node_admin(config, store, secret_keys)
        token_key = await ensure_node_key(store, TOKEN_KEY)
        registry = Registry(config, store, lookup, secret_keys)
        registry.signing = RecordSigning(
            app[NODE_KEYS], config.node_prefix, lookup.invalidate, config.record_key
        )
        app[STORE] = store
        app[LOOKUP] = lookup
        app[REGISTRY] = registry
        app[AUTHENTICATOR] = Authenticator(lookup, config.limits, secret_keys, store)
        app[ACCOUNTS] = accounts = Accounts(store, Tokens(token_key, config.token_ttl))
        session_key = await ensure_node_key(store, SESSION_KEY)
        app[HANDLE_SESSIONS] = HandleSessions(session_key, store, config.handle_session_ttl)
        store.on_users_changed = accounts.states.invalidate
        app[BATCHES] = Batches(registry)
        app[OPERATORS] = Operators(config, store, registry)
        app[TEMPLATES] = TemplateRegistry(registry)
        app[CONSOLE_OPERATORS] = ConsoleOperators(store, app[HANDLE_SESSIONS])
        app[UPLOADS] = uploads = Uploads(config, store, app[BATCHES], app[METRICS], app[DAILY])
        uploads.accounts = accounts
        try:
            yield
        finally:
            await uploads.close()  # before the pool closes: each marks itself stopped
    finally:
        await lookup.close()


async def change_feed(app: web.Application) -> AsyncIterator[None]:
    """The LISTEN connection that keeps this worker's cache coherent."""
    config = app[CONFIG]
    assert config.dsn is not None
    task = asyncio.create_task(
        follow_changes(config.dsn, app[LOOKUP], app[ACCOUNTS].states, app[STORE].coherence)
    )
    try:
        yield
    finally:
        await stop_task(task)


async def metrics_flush(app: web.Application) -> AsyncIterator[None]:
    """Move the workers' local tallies into the exported metrics once a second."""
    metrics = app[METRICS]

    def flush() -> None:
        lookup = app[LOOKUP]
        cache = lookup.cache
        store = app[STORE]
        coherence = store.coherence or Coherence(0)
        lookup_seconds, lookup.query_seconds = lookup.query_seconds, []
        delays, lookup.invalidation_delays = lookup.invalidation_delays, []
        metrics.flush(
            cache_entries=len(cache),
            cache_bytes=cache.bytes,
            evictions=cache.evictions,
            invalidations=cache.invalidations,
            listen_up=cache.trusted,
            lookups=lookup.batches,
            keys_fetched=lookup.keys_fetched,
            lookup_seconds=lookup_seconds,
            invalidation_delays=delays,
            connections=store.connection_counts(),
            confirmations=(coherence.waits, coherence.timeouts, coherence.wait_seconds),
        )

    async def loop() -> None:
        while True:
            await asyncio.sleep(1.0)
            flush()

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        await stop_task(task)
        flush()


async def daily_counts(app: web.Application) -> AsyncIterator[None]:
    """Add this worker's daily counts to Postgres every few seconds, and once more on the way out."""
    counter, store = app[DAILY], app[STORE]
    task = asyncio.create_task(keep_flushing(counter, store, app[METRICS]))
    try:
        yield
    finally:
        await stop_task(task)
        with contextlib.suppress(Exception):
            await counter.flush(store)


async def upstream_link(app: web.Application) -> AsyncIterator[None]:
    """The top-level node: the outbox deliverer (one per database holds the lock) and, with
    --recursive, resolution of other nodes' handles."""
    config, metrics = app[CONFIG], app[METRICS]
    upstream = make_upstream(config)
    app[UPSTREAM] = upstream
    app[RECURSIVE] = RecursiveResolver(config, upstream) if config.recursive and upstream else None
    task = None
    if upstream is not None:

        def seen(state: OutboxStatus) -> None:
            metrics.set_outbox(state.pending, state.delivered, state.oldest_seconds)

        task = asyncio.create_task(run_deliverer(config, upstream, seen))
    try:
        yield
    finally:
        if task is not None:
            await stop_task(task)
        recursive = app[RECURSIVE]
        if recursive is not None:
            await recursive.close()
        if upstream is not None:
            await upstream.close()


async def native_protocol(app: web.Application) -> AsyncIterator[None]:
    """The native Handle protocol's UDP and TCP listeners, sharing this worker's cache."""
    config = app[CONFIG]
    listeners = None
    if config.native_port:
        from resolver.native.listeners import NativeListeners

        listeners = NativeListeners(app, config.host, config.native_port)
        await listeners.start()
    app[NATIVE] = listeners
    try:
        yield
    finally:
        if listeners is not None:
            await listeners.stop()


async def _freeze_startup_objects(_app: web.Application) -> None:
    """Everything built at startup lives as long as the worker: keep it out of the cyclic garbage
    collector's full passes, which the miss path (many short-lived records) triggers."""
    gc.collect()
    gc.freeze()
    # and collect the youngest generation less often: a miss allocates a few dozen containers
    gc.set_threshold(20_000, 20, 20)


def create_app(config: Config) -> web.Application:
    """The node's aiohttp application for one worker process."""
    limits = config.limits
    use_server_header(config.server_header)
    app = web.Application(
        client_max_size=max(limits.max_body_bytes, limits.max_batch_body_bytes),
        middlewares=[edge(config)],  # request id, trusted proxies, CORS (the fast path's likewise)
    )
    app[CONFIG] = config
    app[RATE_LIMITER] = RateLimiter(config)
    app[METRICS] = NodeMetrics()
    app[DAILY] = DailyCounter(config.node_prefix)
    app[NODE_KEYS] = Signers(config.keys_path)
    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(change_feed)
    app.cleanup_ctx.append(metrics_flush)
    app.cleanup_ctx.append(daily_counts)
    app.cleanup_ctx.append(upstream_link)
    app.cleanup_ctx.append(native_protocol)
    app.on_startup.append(_freeze_startup_objects)
    health.add_routes(app)
    handles.add_routes(app)
    sessions.add_routes(app)
    search.add_routes(app)
    enterprise_api.add_routes(app)
    operator_api.add_routes(app)
    pages.setup(app)  # the enterprise portal, /portal/ (before the proxy takes the paths)
    console.add_routes(app)  # the operator console, /console/
    native_http.add_routes(app)  # POST of native messages, before the proxy takes the paths
    openapi.add_routes(app)  # /openapi.json and /docs, before the proxy takes the paths
    proxy.add_routes(app)
    return app
