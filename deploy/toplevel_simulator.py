"""A SIMULATOR of the national top-level node (国家顶级节点), for tests and the local cluster.

The national node's real provisioning and reporting interfaces are not public. This simulator
implements the receiving side of the protocol `resolver/upstream/toplevel.py` speaks, and a Handle API for
the `0.NA/<prefix>` prefix records it has received, which is what recursive resolution asks:

    POST /upstream/v1/messages          a prefix record (upsert/delete) or a day's statistics;
                                        idempotent by messageId (a repeat is acknowledged, not applied)
    GET  /upstream/v1/state             everything received (for tests and operators)
    POST /simulator/fail {"count": N}   answer the next N messages with 503 (fault tests)
    GET  /api/handles/0.NA/<prefix>     the prefix record, Handle.Net JSON
    GET  /healthz

Run: python deploy/toplevel_simulator.py --port 8900 [--user node --secret s] [--state FILE]
It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
from pathlib import Path
from typing import Any

from aiohttp import web

STATE = web.AppKey("state", dict)
SETTINGS = web.AppKey("settings", dict)


def _load(path: Path | None) -> dict[str, Any]:
    state: dict[str, Any] = {"prefixes": {}, "statistics": {}, "seen": [], "received": 0, "duplicates": 0}
    if path is not None and path.exists():
        state.update(json.loads(path.read_text()))
    state["fail"] = 0
    return state


def _save(app: web.Application) -> None:
    path: Path | None = app[SETTINGS]["path"]
    if path is not None:
        state = {k: v for k, v in app[STATE].items() if k != "fail"}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)


def _authorized(request: web.Request) -> bool:
    user, secret = request.app[SETTINGS]["user"], request.app[SETTINGS]["secret"]
    if not user:
        return True
    expected = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
    return request.headers.get("Authorization") == expected


async def messages(request: web.Request) -> web.Response:
    if not _authorized(request):
        return web.json_response({"status": -1, "message": "authentication failed"}, status=401)
    state = request.app[STATE]
    if state["fail"] > 0:
        state["fail"] -= 1
        return web.json_response({"status": -1, "message": "simulated outage"}, status=503)
    try:
        message = await request.json()
        message_id = str(message["messageId"])
        kind = message["type"]
    except (ValueError, KeyError, TypeError):
        return web.json_response({"status": -1, "message": "bad message"}, status=400)
    state["received"] += 1
    if message_id in state["seen"]:
        state["duplicates"] += 1
        return web.json_response({"status": 1, "duplicate": True})
    if kind == "prefix":
        key = f"0.na/{str(message['prefix']).lower()}"
        if message.get("op") == "delete":
            state["prefixes"].pop(key, None)
        else:
            state["prefixes"][key] = {**message["record"], "node": message.get("node")}
    elif kind == "statistics":
        state["statistics"][f"{message['node']}/{message['day']}"] = message
    else:
        return web.json_response({"status": -1, "message": f"unknown type {kind}"}, status=400)
    state["seen"].append(message_id)
    _save(request.app)
    return web.json_response({"status": 1, "duplicate": False})


async def show_state(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({k: v for k, v in state.items() if k != "seen"})


async def fail(request: web.Request) -> web.Response:
    body = await request.json()
    request.app[STATE]["fail"] = int(body.get("count", 1))
    return web.json_response({"status": 1})


async def handle(request: web.Request) -> web.Response:
    name = request.match_info["handle"]
    record = request.app[STATE]["prefixes"].get(name.lower())
    if record is None:
        return web.json_response({"responseCode": 100, "handle": name}, status=404)
    return web.json_response({"responseCode": 1, "handle": record["handle"], "values": record["values"]})


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "simulator": True})


def create_app(
    user: str | None = None, secret: str | None = None, path: Path | None = None
) -> web.Application:
    app = web.Application()
    app[STATE] = _load(path)
    app[SETTINGS] = {"user": user, "secret": secret, "path": path}
    app.router.add_post("/upstream/v1/messages", messages)
    app.router.add_get("/upstream/v1/state", show_state)
    app.router.add_post("/simulator/fail", fail)
    app.router.add_get("/api/handles/{handle:.+}", handle)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--user")
    parser.add_argument("--secret")
    parser.add_argument("--state", type=Path, help="keep what was received in this JSON file")
    args = parser.parse_args()
    web.run_app(create_app(args.user, args.secret, args.state), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
