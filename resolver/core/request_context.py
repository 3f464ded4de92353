"""The request being handled in this task, as the HTTP edge (resolver/http/edge.py) names it, for
the log records (resolver/logs.py) and the audit entries (resolver/store/tx.py) written while it is
handled. Both are None outside a request (the importer, startup, background tasks started before)."""

from __future__ import annotations

from contextvars import ContextVar

# its X-Request-Id: the client's when sane, else one the node made (resolver/http/requestid.py)
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# the client's address: the TCP peer, or the client a trusted proxy named (resolver/http/forwarded.py)
client_address: ContextVar[str | None] = ContextVar("client_address", default=None)
