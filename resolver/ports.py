"""One port, one node: the parent makes sure that no other process holds the HTTP port or the native
port (TCP and UDP) before it starts anything, and keeps a lock on each port while it runs.

Workers bind with SO_REUSEPORT so that they share the port; Linux lets every process of the same
user join such a port, so without this check a second node started on a busy port would share it
and the two nodes would answer in turn. The check binds each address once without SO_REUSEPORT
(which fails while anybody holds it) and closes it again. The lock (a Linux abstract unix socket
per port number, gone with the process) closes the window between that check and the workers'
binds, in which two nodes starting at the same moment could both pass. It is taken by port number
whatever the address: two nodes on one port number of one machine would also share the metrics
directory (resolver/server.py `serve`).
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from resolver.config import Config

# `resolver serve`'s exit code when a port is taken or cannot be bound (README, Configuration).
EXIT_PORT_IN_USE = 3


class PortInUse(Exception):
    """A port this node needs is held by another process, or cannot be bound at all."""


@dataclass(frozen=True)
class Endpoint:
    """An address the workers will bind: what it is, how, and which option chooses it."""

    name: str  # "HTTP", "native TCP", "native UDP"
    host: str
    port: int
    kind: socket.SocketKind
    option: str

    @property
    def shown(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def endpoints(config: Config) -> list[Endpoint]:
    """What `config`'s workers listen on (port 0, an HTTP port of the system's choosing, is left
    out: nobody else can hold it)."""
    found = []
    if config.port:
        found.append(Endpoint("HTTP", config.host, config.port, socket.SOCK_STREAM, "--port"))
    if config.http_redirect_port:
        found.append(
            Endpoint(
                "HTTP redirect",
                config.host,
                config.http_redirect_port,
                socket.SOCK_STREAM,
                "--http-redirect-port",
            )
        )
    if config.native_port:
        for name, kind in (("native TCP", socket.SOCK_STREAM), ("native UDP", socket.SOCK_DGRAM)):
            found.append(Endpoint(name, config.host, config.native_port, kind, "--native-port"))
    return found


def _addresses(endpoint: Endpoint) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
    """The addresses the worker's bind takes: aiohttp's site binds every address the host names
    (asyncio's create_server); the native listeners bind the host as given
    (resolver/native/listeners.py `_reuse_port_socket`)."""
    if endpoint.name.startswith("HTTP"):
        infos = socket.getaddrinfo(
            endpoint.host or None, endpoint.port, type=endpoint.kind, flags=socket.AI_PASSIVE
        )
        return list(dict.fromkeys((info[0], tuple(info[4])) for info in infos))
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    return [(family, (endpoint.host, endpoint.port))]


def probe(endpoint: Endpoint) -> None:
    """Bind `endpoint` as its worker will, but without SO_REUSEPORT, and let go at once; raises
    PortInUse when that fails (another process holds the port, or it cannot be bound here).

    TCP sets SO_REUSEADDR as the workers do: it only passes over connections in TIME_WAIT (a node
    restarted at once), never a listening socket. UDP does not: there it would let the bind share a
    port with another socket that set it too."""
    try:
        addresses = _addresses(endpoint)
    except OSError as exc:
        raise PortInUse(f"{endpoint.name} address {endpoint.shown} cannot be bound: {exc}") from exc
    for family, address in addresses:
        with socket.socket(family, endpoint.kind) as sock:
            if endpoint.kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and endpoint.name.startswith("HTTP"):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio does
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUse(
                        f"{endpoint.name} port {endpoint.shown} is already in use by another "
                        f"process; stop it or choose {endpoint.option}"
                    ) from exc
                raise PortInUse(
                    f"{endpoint.name} port {endpoint.shown} cannot be bound: {exc.strerror}; "
                    f"choose {endpoint.option}"
                ) from exc


def _lock_name(port: int) -> str:
    return f"\0idis-resolver-port-{port}"


def _holder(port: int) -> int | None:
    """The pid of the process that holds the lock on `port`, if it can be told."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(_lock_name(port))
            credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return None
    pid, _uid, _gid = struct.unpack("3i", credentials)
    return pid if pid > 0 else None


def _lock(port: int, endpoint: Endpoint) -> socket.socket | None:
    """Hold the lock on `port` (None where abstract unix sockets do not exist); raises PortInUse
    when another node holds it."""
    if not sys.platform.startswith("linux"):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(_lock_name(port))
        sock.listen(1)  # so that a refused node can name the holder (SO_PEERCRED)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            return None
        pid = _holder(port)
        holder = f"another resolver (pid {pid})" if pid else "another resolver"
        raise PortInUse(
            f"{endpoint.name} port {endpoint.port} is already in use by {holder}; "
            f"stop it or choose {endpoint.option}"
        ) from exc
    return sock


@contextlib.contextmanager
def held(config: Config) -> Iterator[None]:
    """Lock and check every port `config` listens on, and keep the locks until the block ends;
    raises PortInUse (nothing is left held) when one is taken."""
    wanted = endpoints(config)
    locks: list[socket.socket] = []
    try:
        for endpoint in wanted:
            if endpoint.kind == socket.SOCK_STREAM:  # one lock per port number
                lock = _lock(endpoint.port, endpoint)
                if lock is not None:
                    locks.append(lock)
        for endpoint in wanted:
            probe(endpoint)
        yield
    finally:
        for lock in locks:
            lock.close()
