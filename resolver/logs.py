"""Logging set-up shared by every command and process (kept apart so that commands other than
`serve` need not load the HTTP stack).

Two formats (`--log-format`): `text`, one line a record for people, and `json`, one JSON object a
line for log pipelines: `time` (UTC, ISO 8601, milliseconds), `level`, `logger`, `message`, `pid`,
`request_id` while a request is handled, and `exception` (the traceback text) when there is one.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import time

import orjson

from resolver.http import requestid

TEXT_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s%(request_tag)s: %(message)s"
# aiohttp's access log line with the request's id appended (the answer's X-Request-Id header)
ACCESS_LOG_FORMAT = '%a %t "%r" %s %b "%{Referer}i" "%{User-Agent}i" %{X-Request-Id}o'


def setup_logging(log_format: str = "text") -> None:
    """Log to stderr at RESOLVER_LOG_LEVEL (INFO), as text or as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(_with_request_id)
    logging.basicConfig(
        level=os.environ.get("RESOLVER_LOG_LEVEL", "INFO").upper(), handlers=[handler, RECENT]
    )
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(_drop_malformed_requests)


class RecentProblems(logging.Handler):
    """The last warnings and errors of this process, for the console's node page (each worker
    keeps its own; the log itself is the full record)."""

    def __init__(self, keep: int = 50) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[tuple[float, str, str, str, str]] = collections.deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: still worth showing
            message = str(record.msg)
        request = str(getattr(record, "request_id", "") or "")
        self.records.append((record.created, record.levelname, record.name, message[:500], request))


RECENT = RecentProblems()


def _with_request_id(record: logging.LogRecord) -> bool:
    """Name the request being handled (resolver.http.requestid.current) on the record."""
    rid = requestid.current.get()
    record.request_id = rid
    record.request_tag = f" [{rid}]" if rid else ""
    return True


class JsonFormatter(logging.Formatter):
    """One JSON object a record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        rid = getattr(record, "request_id", None)
        if rid:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def _drop_malformed_requests(record: logging.LogRecord) -> bool:
    """aiohttp logs every request its parser refuses with a traceback (anyone could fill the log
    with them); the client got its 400, so the record says nothing about the node."""
    from aiohttp.http_exceptions import BadHttpMessage

    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, BadHttpMessage)
