"""`X-Request-Id`: the id of one request, taken from the client when it is sane, made here
otherwise, sent back on the answer and named by every log line written while the request is
handled.

A client's id is kept when it is 1 to 128 visible ASCII characters (no space, no control
character): anything else could not be logged or echoed as it is, and is replaced. A made id is
this process's random prefix and a counter (`3f9a1c0b7e-1a2b`): unique across workers and restarts
with no system call per request (uuid4 reads os.urandom each time; this costs a tenth of it).
"""

from __future__ import annotations

import itertools
import os

from resolver.core import request_context

HEADER = "X-Request-Id"
MAX_LENGTH = 128

# The id of the request being handled in this task, for the log records and the audit entries.
current = request_context.request_id


def _seed() -> None:
    global _prefix, _prefix_bytes, _counter
    _prefix = os.urandom(5).hex() + "-"
    _prefix_bytes = _prefix.encode()
    _counter = itertools.count(1)


_prefix = ""
_prefix_bytes = b""
_counter = itertools.count(1)
_seed()
os.register_at_fork(after_in_child=_seed)  # a forked child must not repeat its parent's ids


def new_id() -> str:
    """A fresh id: this process's prefix and the next value of its counter, in hex."""
    return f"{_prefix}{next(_counter):x}"


def new_id_bytes() -> bytes:
    """`new_id()` as the fast path writes it (the same counter)."""
    return b"%s%x" % (_prefix_bytes, next(_counter))


def sane(sent: str | None) -> str | None:
    """`sent` when it may be used as the request's id (1 to 128 visible ASCII characters), else
    None. Header values arrive without surrounding blanks (aiohttp strips them, so does the fast
    path)."""
    if not sent or len(sent) > MAX_LENGTH or not sent.isascii() or not sent.isprintable() or " " in sent:
        return None
    return sent


def of(sent: str | None) -> str:
    """The id of a request whose `X-Request-Id` header is `sent` (None: absent)."""
    return sane(sent) or new_id()
