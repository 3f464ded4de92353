"""Logging set-up shared by every command and process (kept apart so that commands other than
`serve` need not load the HTTP stack)."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("RESOLVER_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(_drop_malformed_requests)


def _drop_malformed_requests(record: logging.LogRecord) -> bool:
    """aiohttp logs every request its parser refuses with a traceback (anyone could fill the log
    with them); the client got its 400, so the record says nothing about the node."""
    from aiohttp.http_exceptions import BadHttpMessage

    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, BadHttpMessage)
