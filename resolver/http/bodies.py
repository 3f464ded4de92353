"""Request bodies, read with a limit that holds whatever the transfer encoding.

aiohttp's own `client_max_size` is one number for the whole application (the largest of our
limits, the batch body), and a chunked body has no Content-Length to check up front: every handler
reads its body through `read_body` with the limit of its route.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from resolver.core.errors import RC, BodyTimeout, HandleError, PayloadTooLarge, UnsupportedEncoding
from resolver.http.keys import CONFIG

_CHUNK = 65536


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body; 413 (PayloadTooLarge) as soon as more than `limit` bytes arrive, 408
    (BodyTimeout) when it takes longer than the configured body timeout."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limit)
    coding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        # decoded, a small body could be any size: bodies are taken as sent, never decompressed
        raise UnsupportedEncoding(coding)
    seconds = request.app[CONFIG].body_timeout
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds if seconds > 0 else None):
            async for chunk in request.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(seconds) from None
    return b"".join(chunks)


# JSON nested deeper than this is refused: it is what orjson can write back (the node stores and
# answers what it accepts); no value of the node's APIs needs more than a handful of levels.
MAX_JSON_DEPTH = 254
_ESCAPED_NUL = b"\\u0000"


def check_json(raw: bytes, body: object) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH, and NUL characters in any string or key
    (Postgres text cannot hold them); `raw` is the text `body` was parsed from."""
    if _ESCAPED_NUL not in raw:  # the only way to write a NUL in JSON text
        try:
            orjson.dumps(body)  # about 1 ms a megabyte; fails past MAX_JSON_DEPTH levels
        except orjson.JSONEncodeError:
            raise _too_deep() from None
        return
    nul = True
    stack: list[tuple[object, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if type(node) is dict:
            if depth > MAX_JSON_DEPTH:
                raise _too_deep()
            for key, child in node.items():
                if nul and "\x00" in key:
                    raise _nul()
                if type(child) is dict or type(child) is list:
                    stack.append((child, depth + 1))
                elif nul and type(child) is str and "\x00" in child:
                    raise _nul()
        elif type(node) is list:
            if depth > MAX_JSON_DEPTH:
                raise _too_deep()
            for child in node:
                if type(child) is dict or type(child) is list:
                    stack.append((child, depth + 1))
                elif nul and type(child) is str and "\x00" in child:
                    raise _nul()
        elif nul and type(node) is str and "\x00" in node:
            raise _nul()


def _too_deep() -> HandleError:
    return HandleError(
        RC.PROTOCOL_ERROR,
        f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep",
        zh=f"JSON 请求体嵌套超过 {MAX_JSON_DEPTH} 层",
    )


def _nul() -> HandleError:
    return HandleError(
        RC.PROTOCOL_ERROR,
        "the JSON body holds a NUL character (\\u0000), which no value may contain",
        zh="JSON 请求体中含有 NUL 字符（\\u0000），标识值不能包含它",
    )


def has_nul(request: web.Request) -> bool:
    """True when the request's path or query holds a NUL (percent-encoded or not)."""
    return "\x00" in request.path or "%00" in request.rel_url.raw_query_string
