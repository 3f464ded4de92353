"""HTTPS on the real `resolver serve` (issue 17, item 1): the certificate from `resolver tls
self-signed`, replaced on SIGHUP while a keep-alive connection stays up, a broken pair on SIGHUP
leaving the old one in use, the plain-HTTP port that only redirects (308, method kept), a stranger
who never finishes the handshake let go, plain HTTP on the TLS port refused without a hang, and the
settings refused before anything starts when they cannot serve."""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import basic
from tests.nodes import free_port, start_node

pytestmark = pytest.mark.e2e


def self_signed(directory: Path, *names: str, days: int = 365) -> tuple[Path, Path]:
    args = [arg for name in names for arg in ("--name", name)] + ["--days", str(days)]
    done = subprocess.run(
        [sys.executable, "-m", "resolver", "tls", "self-signed", "--out", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    key = directory / "key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    return directory / "cert.pem", key


def der(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text())


def not_after(pem: Path) -> float:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem.read_bytes()).not_valid_after_utc.timestamp()


def expiry_metric(url: str) -> float:
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("resolver_tls_certificate_expiry_timestamp_seconds "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no resolver_tls_certificate_expiry_timestamp_seconds")


def served_certificate(port: int, trust: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(trust))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        peer = tls.getpeercert(binary_form=True)
        assert peer is not None
        return peer


@pytest.fixture
def certificates(tmp_path: Path):
    first = self_signed(tmp_path / "first", "localhost", "127.0.0.1")
    second = self_signed(tmp_path / "second", "127.0.0.1", "node.example", days=30)
    trust = tmp_path / "trust.pem"
    trust.write_text(first[0].read_text() + second[0].read_text())
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(first[0], live / "cert.pem")
    shutil.copy(first[1], live / "key.pem")
    return first, second, trust, live


def test_https_reload_redirect_and_strangers(certificates, fresh_database: str, tmp_path: Path, monkeypatch):
    first, second, trust, live = certificates
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(trust))  # start_node's readiness checks use requests
    redirect_port = free_port()
    node = start_node(
        tmp_path,
        "--workers", "2",
        "--dsn", fresh_database,
        "--tls-cert", str(live / "cert.pem"),
        "--tls-key", str(live / "key.pem"),
        "--http-redirect-port", str(redirect_port),
        "--header-timeout", "2",
        scheme="https",
    )  # fmt: skip
    port = int(node.url.rsplit(":", 1)[1])
    try:
        answer = requests.get(f"{node.url}/api/handles/0.NA/88.123", timeout=10)
        assert answer.status_code == 200 and answer.json()["responseCode"] == 1
        assert served_certificate(port, trust) == der(first[0])
        assert expiry_metric(node.url) == not_after(first[0])  # for the certificate-expiry alerts

        # a keep-alive connection made under the first certificate
        context = ssl.create_default_context(cafile=str(trust))
        kept = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        kept.request("GET", "/api/handles/0.NA/88.123")
        assert kept.getresponse().read() and kept.sock is not None

        # the files replaced, SIGHUP: new handshakes get the second certificate
        shutil.copy(second[0], live / "cert.pem")
        shutil.copy(second[1], live / "key.pem")
        node.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while served_certificate(port, trust) != der(second[0]):
            assert time.monotonic() < deadline, "the new certificate was not served"
            time.sleep(0.2)
        for _ in range(6):  # new connections reach both workers: every one serves the new pair
            assert served_certificate(port, trust) == der(second[0])
        assert expiry_metric(node.url) == not_after(second[0])  # the lowest over the workers: the new one
        kept.request("GET", "/status", headers=basic())
        reply = kept.getresponse()
        assert reply.status == 200 and b"pid" in reply.read()  # the old connection was not dropped
        kept.close()

        # a broken pair (a key that is not the certificate's): the second one stays in use
        shutil.copy(first[1], live / "key.pem")
        node.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while "TLS certificate not reloaded" not in node.log.read_text():
            assert time.monotonic() < deadline, node.log.read_text()
            time.sleep(0.2)
        assert served_certificate(port, trust) == der(second[0])
        assert requests.get(f"{node.url}/readyz", timeout=10).status_code == 200
        assert node.process.poll() is None

        # the plain-HTTP port only redirects, to the same path and query, keeping the method
        plain = f"http://127.0.0.1:{redirect_port}"
        for method in ("GET", "POST", "PUT"):
            moved = requests.request(
                method, f"{plain}/api/handles/88.123/X-1?noredirect", allow_redirects=False, timeout=10
            )
            assert moved.status_code == 308, moved.text
            assert moved.headers["Location"] == f"https://127.0.0.1:{port}/api/handles/88.123/X-1?noredirect"
        with socket.create_connection(("127.0.0.1", redirect_port), timeout=10) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: evil host\r\nConnection: close\r\n\r\n")
            reply_bytes = raw.recv(4096)
        assert reply_bytes.startswith(b"HTTP/1.1 400"), reply_bytes[:200]
        followed = requests.get(f"{plain}/api/handles/0.NA/88.123", timeout=10)  # trusted through the bundle
        assert followed.status_code == 200 and followed.url.startswith("https://")

        # plain HTTP on the TLS port: refused, no hang
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)

        # a stranger who opens a connection and never says hello is let go (--header-timeout 2)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as idle:
            opened = time.monotonic()
            assert idle.recv(1) == b""  # closed by the node
            assert time.monotonic() - opened < 25
    finally:
        code = node.stop()
        assert code == 0, node.log.read_text()


@pytest.mark.parametrize(
    "args, said",
    [
        (["--tls-cert", "CERT"], "--tls-cert and --tls-key go together"),
        (["--http-redirect-port", "18099"], "--http-redirect-port redirects to HTTPS"),
        (["--tls-cert", "CERT", "--tls-key", "CERT"], "are not a PEM certificate chain and its private key"),
        (["--tls-cert", "MISSING", "--tls-key", "KEY"], "does not exist"),
    ],
)
def test_settings_that_cannot_serve_are_refused_before_anything_starts(certificates, args, said, tmp_path):
    first, _, _, _ = certificates
    names = {"CERT": str(first[0]), "KEY": str(first[1]), "MISSING": str(tmp_path / "nothing.pem")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "resolver",
            "serve",
            "--port",
            str(free_port()),
            *(names.get(a, a) for a in args),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and said in done.stderr, done.stderr
