"""One port, one node (issue 15): the parent's check of the HTTP and native ports (resolver/ports.py).

The reference server binds its listeners exclusively and stops on failure
(net/handle/server/HdlTcpInterface.java and HdlUdpInterface.java, `serveRequests`: `new
ServerSocket(bindPort, backlog, bindAddress)` / `new DatagramSocket(bindPort, bindAddress)`, "Error
setting up server socket"); our workers share the port with SO_REUSEPORT, so the parent checks first.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from resolver import ports
from resolver.config import Config
from resolver.native.listeners import _reuse_port_socket

TCP, UDP = socket.SOCK_STREAM, socket.SOCK_DGRAM


def _held(kind: socket.SocketKind, host: str = "127.0.0.1", *options: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind)
    for option in options:
        sock.setsockopt(socket.SOL_SOCKET, option, 1)
    sock.bind((host, 0))
    if kind == TCP:
        sock.listen()
    return sock


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def _endpoint(kind: socket.SocketKind, port: int, host: str = "127.0.0.1") -> ports.Endpoint:
    if kind == TCP:
        return ports.Endpoint("HTTP", host, port, kind, "--port")
    return ports.Endpoint("native UDP", host, port, kind, "--native-port")


def _free(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("kind", [TCP, UDP], ids=["tcp", "udp"])
def test_a_free_port_passes(kind: socket.SocketKind) -> None:
    """HdlTcpInterface/HdlUdpInterface.serveRequests: a free port binds."""
    ports.probe(_endpoint(kind, _free(kind)))


@pytest.mark.parametrize(
    "options",
    [(), (socket.SO_REUSEPORT,), (socket.SO_REUSEADDR,), (socket.SO_REUSEADDR, socket.SO_REUSEPORT)],
    ids=["plain", "reuseport", "reuseaddr", "both"],
)
@pytest.mark.parametrize("kind", [TCP, UDP], ids=["tcp", "udp"])
def test_a_port_another_socket_holds_is_refused(
    kind: socket.SocketKind, options: tuple[int, ...], sockets: list[socket.socket]
) -> None:
    """HdlTcpInterface/HdlUdpInterface.serveRequests: an exclusive bind fails on a held port,
    whatever sharing options the holder set."""
    holder = _held(kind, "127.0.0.1", *options)
    sockets.append(holder)
    port = holder.getsockname()[1]
    with pytest.raises(ports.PortInUse, match=f"127.0.0.1:{port} is already in use by another process"):
        ports.probe(_endpoint(kind, port))


@pytest.mark.parametrize("host", ["0.0.0.0", "localhost"])
def test_a_wildcard_or_named_host_overlapping_a_held_address_is_refused(
    host: str, sockets: list[socket.socket]
) -> None:
    """HdlTcpInterface.serveRequests: binding ANY (or a name for the held address) conflicts too."""
    holder = _held(TCP, "127.0.0.1", socket.SO_REUSEPORT)
    sockets.append(holder)
    with pytest.raises(ports.PortInUse, match="already in use"):
        ports.probe(_endpoint(TCP, holder.getsockname()[1], host))


def test_an_address_that_is_not_local_is_refused_with_the_reason() -> None:
    """HdlTcpInterface.serveRequests: any bind failure stops the listener (not only a busy port)."""
    with pytest.raises(ports.PortInUse, match="cannot be bound: Cannot assign requested address"):
        ports.probe(_endpoint(TCP, _free(TCP), "192.0.2.1"))


def test_connections_in_time_wait_do_not_block_a_restart() -> None:
    """A node restarted at once: its old connections in TIME_WAIT (the server closed first) leave
    the port free (SO_REUSEADDR on TCP, as the workers' listeners set it)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as every worker's listener
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()  # the server side goes to TIME_WAIT once the client closes
            client.recv(1)
    ports.probe(_endpoint(TCP, port))


def test_the_workers_udp_socket_cannot_be_joined_through_so_reuseaddr() -> None:
    """native/listeners.py `_reuse_port_socket`: on UDP, SO_REUSEADDR would let another socket
    bind the port too (and take its datagrams), so the workers set only SO_REUSEPORT there; a
    second worker still joins."""
    port = _free(UDP)
    worker = _reuse_port_socket(UDP, "127.0.0.1", port)
    try:
        with socket.socket(socket.AF_INET, UDP) as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError):
                other.bind(("127.0.0.1", port))
        _reuse_port_socket(UDP, "127.0.0.1", port).close()
    finally:
        worker.close()


def test_endpoints_cover_http_and_both_native_transports() -> None:
    """What the workers bind: the HTTP port, and the native port on TCP and UDP unless it is off;
    an HTTP port of 0 (the system's choice) cannot be held by anybody."""
    names = [(e.name, e.port) for e in ports.endpoints(Config(port=8000, native_port=2641))]
    assert names == [("HTTP", 8000), ("native TCP", 2641), ("native UDP", 2641)]
    assert [e.name for e in ports.endpoints(Config(port=8000, native_port=0))] == ["HTTP"]
    assert ports.endpoints(Config(port=0, native_port=0)) == []


def test_a_second_node_on_a_locked_port_is_refused_and_named() -> None:
    """Two nodes starting at once: the lock on the port number refuses the second one, naming the
    first one's pid, before either binds; released when the first one's block ends."""
    http_port, native_port = _free(TCP), _free(UDP)
    first = Config(port=http_port, native_port=native_port)
    with ports.held(first):
        for second in (Config(port=http_port, native_port=0), Config(port=0, native_port=native_port)):
            with (
                pytest.raises(ports.PortInUse, match=f"another resolver \\(pid {os.getpid()}\\)"),
                ports.held(second),
            ):
                pass
        # only the lock stands in the way: nothing is bound while the node has not started workers
        ports.probe(_endpoint(TCP, http_port))
    with ports.held(first):
        pass


def test_a_refused_start_holds_nothing(sockets: list[socket.socket]) -> None:
    """A refusal on the native port lets go of the HTTP port's lock it already took. The port is
    held on UDP here; another process of the machine may hold the same number on TCP, which is
    checked first (CI50: 'native TCP port ... in use'): either refusal is the native port's."""
    holder = _held(UDP)
    sockets.append(holder)
    http_port = _free(TCP)
    with (
        pytest.raises(ports.PortInUse, match=r"native (UDP|TCP) port"),
        ports.held(Config(port=http_port, native_port=holder.getsockname()[1])),
    ):
        pass
    with ports.held(Config(port=http_port, native_port=0)):
        pass
