"""The embedded Postgres (the `pgserver` wheel) used when no DSN is configured."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from resolver.config import Config

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A Postgres server whose data lives in `data_dir` and survives restarts."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return its DSN."""
        os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting the embedded Postgres in %s", self.data_dir)
        # pgserver gives `pg_ctl start` 10 s; a loaded machine (or recovery after a crash) can need
        # more, and the server then comes up on its own: look again before giving up.
        for attempt in range(6):
            try:
                self._server = get_server(self.data_dir, cleanup_mode="stop")
                break
            except subprocess.TimeoutExpired:
                if attempt == 5:
                    raise
                log.warning("the embedded Postgres is slow to start; waiting for it")
                time.sleep(2)
        return str(self._server.get_uri())

    def stop(self) -> None:
        """Stop the server (when this process is its last user)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


@contextlib.contextmanager
def database(config: Config) -> Iterator[Config]:
    """`config` with a DSN: the given one, or that of the embedded Postgres, stopped afterwards."""
    if config.dsn is not None:
        yield config
        return
    embedded = EmbeddedPostgres(config.data_dir)
    try:
        yield replace(config, dsn=embedded.start())
    finally:
        embedded.stop()
