"""The change notifications' payloads: which handles (and enterprise users) a commit changed."""

from __future__ import annotations

import time

CHANNEL = "resolver_handles"
# Postgres refuses NOTIFY payloads of 8000 bytes or more.
MAX_PAYLOAD_BYTES = 7900


def notification_payloads(keys: list[str], sent_at: float | None = None, origin: str = "") -> list[str]:
    """The changed keys, newline-separated, split into payloads Postgres accepts.

    Each payload starts with `@<unix time>` (keys never start with '@'), so that listeners can
    measure how long an invalidation took to reach them, then, after a space, the writer's origin
    token when it waits for acknowledgements (`resolver.store.coherence`).
    """
    stamp = f"@{time.time() if sent_at is None else sent_at:.4f}"
    if origin:
        stamp = f"{stamp} {origin}"
    payloads: list[str] = []
    current: list[str] = [stamp]
    size = len(stamp) + 1
    for key in keys:
        length = len(key.encode("utf-8")) + 1
        if len(current) > 1 and size + length > MAX_PAYLOAD_BYTES:
            payloads.append("\n".join(current))
            current, size = [stamp], len(stamp) + 1
        current.append(key)
        size += length
    if len(current) > 1:
        payloads.append("\n".join(current))
    return payloads


def parse_payload(payload: str) -> tuple[float | None, list[str]]:
    """(when it was sent, the keys) of a change notification."""
    lines = payload.split("\n")
    if lines and lines[0].startswith("@"):
        try:
            return float(lines[0][1:].partition(" ")[0]), lines[1:]
        except ValueError:
            return None, lines[1:]
    return None, lines


def payload_origin(payload: str) -> str:
    """The origin token of a change notification ('' when its writer waits for no acknowledgement)."""
    if not payload.startswith("@"):
        return ""
    return payload.partition("\n")[0].partition(" ")[2]


# A line of a change notification naming an enterprise user whose tokens' state changed. A handle
# key is a prefix (letters, digits, '.', '-', '_'), '/' and a suffix, so it never starts like this.
USER_LINE = "user:"


def user_line(user_id: int) -> str:
    """The notification line telling every worker that `user_id`'s token state changed."""
    return f"{USER_LINE}{user_id}"


def split_users(lines: list[str]) -> tuple[list[str], list[int]]:
    """(the handle keys, the enterprise user ids) named by the lines of a change notification."""
    if not any(line.startswith(USER_LINE) for line in lines):
        return lines, []
    keys: list[str] = []
    users: list[int] = []
    for line in lines:
        if not line.startswith(USER_LINE):
            keys.append(line)
        elif line[len(USER_LINE) :].isdigit():
            users.append(int(line[len(USER_LINE) :]))
    return keys, users
