"""Running the node: worker processes on one port, watched by a parent process.

Each worker has its own pool and cache and binds the port with SO_REUSEPORT; the parent first
makes sure no other process holds the port, and keeps it locked (resolver/ports.py). The parent
restarts a worker that dies, and on SIGTERM or SIGINT asks every worker to stop accepting, finish
what is in flight (bounded by the shutdown timeout) and exit.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import tempfile
import time
from dataclasses import replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from aiohttp import web

from resolver.config import Config
from resolver.embedded import EmbeddedPostgres
from resolver.http.app import create_app
from resolver.http.connections import ConnectionGuard, GuardedRunner
from resolver.http.keys import METRICS, NODE_KEYS
from resolver.http.tls import redirect_app, server_tls
from resolver.logs import ACCESS_LOG_FORMAT, setup_logging
from resolver.metrics import prepare_multiprocess_dir, worker_died
from resolver.ports import held as held_ports
from resolver.readiness import mark_listening
from resolver.services.bootstrap import ensure_node_admin
from resolver.services.seckeys import SecretKeys, load_seal
from resolver.store.connections import wait_for_database
from resolver.store.migrations import migrate
from resolver.store.open import open_store

log = logging.getLogger("resolver")


async def _serve_worker(config: Config, slot: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGINT (Ctrl-C reaches the whole process group) is the parent's to handle; it sends SIGTERM.
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    share = -(-config.max_connections_per_address // max(1, config.workers))  # rounded up
    app = create_app(config)
    runner = GuardedRunner(
        app,
        ConnectionGuard(config.header_timeout, share, config.trusted_proxies),
        handle_signals=False,
        access_log=logging.getLogger("resolver.access") if config.access_log else None,
        access_log_format=ACCESS_LOG_FORMAT,
        shutdown_timeout=config.shutdown_timeout,
        keepalive_timeout=config.keepalive_timeout,
        auto_decompress=False,  # a compressed body is refused (415), never inflated
    )
    tls = server_tls(config)

    def reload() -> None:  # SIGHUP: the TLS certificate and the node's keys, from their files
        if tls is not None:
            tls.reload()
            app[METRICS].tls_expiry.set(tls.expires)
        if app[NODE_KEYS].load():
            log.info("worker %d loaded the node keys", os.getpid())

    loop.add_signal_handler(signal.SIGHUP, reload)
    if tls is not None:
        app[METRICS].tls_expiry.set(tls.expires)
    redirect = (
        web.AppRunner(redirect_app(config), handle_signals=False)
        if tls and config.http_redirect_port
        else None
    )
    await runner.setup()
    try:
        site = TLSSite(
            runner,
            config.host,
            config.port,
            ssl_context=None if tls is None else tls.listening,
            handshake_timeout=config.header_timeout,
            reuse_port=True,
            backlog=1024,
        )
        await site.start()
        if redirect is not None:
            await redirect.setup()
            await web.TCPSite(redirect, config.host, config.http_redirect_port, reuse_port=True).start()
        mark_listening(slot)
        scheme = "https" if tls else "http"
        log.info("worker %d listening on %s://%s:%d", os.getpid(), scheme, config.host, config.port)
        await stop.wait()
        log.info("worker %d stopping", os.getpid())
    finally:
        if redirect is not None:
            await redirect.cleanup()
        await runner.cleanup()


class TLSSite(web.TCPSite):
    """aiohttp's TCP site, with a bound on the TLS handshake (asyncio's default is 60 s: a
    stranger could hold a connection that long without sending a byte of a request)."""

    def __init__(self, *args: Any, handshake_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handshake_timeout = handshake_timeout

    async def start(self) -> None:
        if self._ssl_context is None:
            await super().start()
            return
        self._runner._reg_site(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._handshake_timeout,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


def worker_main(config: Config, slot: int = 0) -> None:
    """Entry point of one worker process."""
    setup_logging(config.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; SIGTERM stops us
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the loop handles it (TLS reload)
    try:
        import uvloop

        uvloop.run(_serve_worker(config, slot))
    except KeyboardInterrupt:
        pass


async def prepare_database(config: Config) -> None:
    """Migrate and bootstrap once in the parent, so that configuration errors show at once."""
    assert config.dsn is not None
    conn = await wait_for_database(config.dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    async with open_store(config, single=True) as store:
        seal = await load_seal(config.keys_path, store)
        await ensure_node_admin(config, store, SecretKeys(seal))


async def run_migrations(config: Config) -> int:
    """`resolver migrate`: apply the schema and report the version."""
    assert config.dsn is not None
    conn = await wait_for_database(config.dsn, attempts=10)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


class Supervisor:
    """Starts, watches and stops the worker processes."""

    # A worker that dies sooner than this after starting counts as a failed start.
    QUICK_DEATH = 3.0
    MAX_QUICK_DEATHS = 5

    def __init__(self, config: Config) -> None:
        self.config = config
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, tuple[BaseProcess, float]] = {}
        self.stopping = False
        self.quick_deaths = 0

    def _spawn(self, slot: int) -> None:
        old = self.workers.get(slot)
        if old is not None and old[0].pid is not None:
            worker_died(old[0].pid)
        process = self.context.Process(
            target=worker_main, args=(self.config, slot), name=f"resolver-worker-{slot}"
        )
        # The child starts with SIGHUP ignored (an ignored signal stays ignored across exec), so a
        # reload asked for while it starts cannot kill it; its loop handles SIGHUP once it runs.
        previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            process.start()
        finally:
            signal.signal(signal.SIGHUP, previous)
        self.workers[slot] = (process, time.monotonic())

    def _forward_reload(self, _signum: int, _frame: object) -> None:
        """SIGHUP: every worker loads the TLS certificate and the node's keys again."""
        log.info("received SIGHUP; workers reload the TLS certificate and the node keys")
        for process, _ in self.workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)

    def _request_stop(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            log.info("received %s; stopping workers", signal.Signals(signum).name)
        self.stopping = True

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGHUP, self._forward_reload)
        for slot in range(self.config.workers):
            self._spawn(slot)
        log.info(
            "serving node %s on %s://%s:%d with %d workers",
            self.config.node_prefix,
            "https" if self.config.tls_cert else "http",
            self.config.host,
            self.config.port,
            self.config.workers,
        )
        while not self.stopping:
            sentinels = [p.sentinel for p, _ in self.workers.values()]
            multiprocessing.connection.wait(sentinels, timeout=0.5)
            for slot, (process, started) in list(self.workers.items()):
                if process.is_alive() or self.stopping:
                    continue
                log.error("worker %s exited with %s; restarting it", process.pid, process.exitcode)
                if time.monotonic() - started < self.QUICK_DEATH:
                    self.quick_deaths += 1
                    if self.quick_deaths >= self.MAX_QUICK_DEATHS:
                        log.critical("workers keep dying at start; giving up")
                        self.stopping = True
                        self._stop_all()
                        return 1
                    time.sleep(min(5.0, 0.2 * 2**self.quick_deaths))
                else:
                    self.quick_deaths = 0
                self._spawn(slot)
        self._stop_all()
        return 0

    def _stop_all(self) -> None:
        for process, _ in self.workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.shutdown_timeout + 5.0
        for process, _ in self.workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
        for process, _ in self.workers.values():
            if process.is_alive():
                log.warning("worker %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join(2.0)
        log.info("all workers stopped")


def serve(config: Config) -> int:
    """`resolver serve`: the embedded Postgres if needed, then the workers until a signal."""
    # Before anything starts: a port another process holds refuses the node (ports.PortInUse).
    with held_ports(config):
        embedded: EmbeddedPostgres | None = None
        if config.dsn is None:
            embedded = EmbeddedPostgres(config.data_dir)
            config = replace(config, dsn=embedded.start())
        try:
            asyncio.run(prepare_database(config))
            # Every worker writes its metrics here; any of them answers /metrics for all.
            prepare_multiprocess_dir(Path(tempfile.gettempdir()) / f"resolver-metrics-{config.port}")
            # The administrator exists now; workers never need its secret.
            return Supervisor(replace(config, admin_secret=None)).run()
        finally:
            if embedded is not None:
                embedded.stop()
