"""HTTPS on the node's HTTP listener: the certificate from PEM files, replaced on SIGHUP without
dropping a connection, an optional plain-HTTP listener that only redirects, and a self-signed
certificate for a first run.

The listening context never changes; its SNI callback hands every new handshake the current
context. A reload builds a whole new context from the files and swaps it in only when the
certificate and key load and match, so a half-written or mismatched pair leaves the node serving
the old one (and says so in the log). Connections already open keep the certificate they started
with; the next handshake gets the new one.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import re
import ssl
from pathlib import Path

from aiohttp import web

from resolver.config import Config

log = logging.getLogger("resolver")

# Hostnames a redirect may name: letters, digits, dots and hyphens, or a bracketed IPv6 address.
_HOSTNAME = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?|\[[0-9A-Fa-f:.]+\])$"
)


class TLSFilesError(Exception):
    """The certificate or key cannot be used (unreadable, not PEM, or not a pair)."""


def _context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise TLSFilesError(f"{exc.filename} does not exist") from exc
    except PermissionError as exc:
        raise TLSFilesError(f"{exc.filename} cannot be read ({exc.strerror})") from exc
    except ssl.SSLError as exc:
        raise TLSFilesError(
            f"{cert} and {key} are not a PEM certificate chain and its private key ({exc.reason or exc})"
        ) from exc
    except OSError as exc:
        raise TLSFilesError(f"{cert} or {key} cannot be read: {exc}") from exc
    return context


def _not_after(cert: str) -> float:
    """When the chain's first certificate (the node's own) expires, in seconds since the epoch."""
    from cryptography import x509

    try:
        with open(cert, "rb") as pem:
            leaf = x509.load_pem_x509_certificates(pem.read())[0]
    except (OSError, ValueError, IndexError) as exc:
        raise TLSFilesError(f"{cert}: the certificate cannot be read ({exc})") from exc
    return leaf.not_valid_after_utc.timestamp()


class ServerTLS:
    """The listener's context and the current one behind it (see the module's docstring)."""

    def __init__(self, cert: str, key: str) -> None:
        self.cert, self.key = cert, key
        self.current = _context(cert, key)
        self.listening = _context(cert, key)
        self.listening.sni_callback = self._choose
        self.expires = _not_after(cert)

    def _choose(self, connection: ssl.SSLObject, _name: str | None, _context: ssl.SSLContext) -> None:
        connection.context = self.current  # the handshake goes on under the current certificate

    def reload(self) -> bool:
        """Load the files again; True when the new pair is in use, False (old pair kept) when not."""
        try:
            context = _context(self.cert, self.key)
            expires = _not_after(self.cert)
        except TLSFilesError as exc:
            log.error("TLS certificate not reloaded, the previous one stays in use: %s", exc)
            return False
        self.current, self.expires = context, expires
        log.info("TLS certificate reloaded from %s", self.cert)
        return True


def server_tls(config: Config) -> ServerTLS | None:
    """The node's TLS when --tls-cert and --tls-key are given; TLSFilesError when they cannot serve."""
    if not config.tls_cert or not config.tls_key:
        return None
    return ServerTLS(config.tls_cert, config.tls_key)


def https_base(config: Config, host_header: str | None) -> str | None:
    """Where the redirect listener sends a request: --public-url when it is https, else the host the
    client asked for on the TLS port; None when the request names no usable host."""
    if config.public_url and config.public_url.startswith("https://"):
        return config.public_url.rstrip("/")
    host = (host_header or "").strip()
    if host.startswith("["):  # [IPv6] or [IPv6]:port
        host = host[: host.find("]") + 1] if "]" in host else ""
    elif host.count(":") <= 1:  # name or name:port
        host = host.partition(":")[0]
    else:
        host = ""  # an unbracketed IPv6 address: not a Host header
    if not host or not _HOSTNAME.match(host):
        return None
    port = "" if config.port == 443 else f":{config.port}"
    return f"https://{host}{port}"


def redirect_app(config: Config) -> web.Application:
    """The plain-HTTP listener: every request is told to come again over HTTPS (308 keeps the
    method and body, so a client that POSTed is not turned into a GET)."""

    async def to_https(request: web.Request) -> web.StreamResponse:
        base = https_base(config, request.headers.get("Host"))
        if base is None:
            return web.json_response(
                {
                    "responseCode": 4,
                    "message": "use HTTPS: this port only redirects, and the request names no host",
                },
                status=400,
            )
        response = web.Response(status=308, headers={"Location": base + request.path_qs})
        response.text = f"Use HTTPS: {base}{request.path_qs}\n"
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", to_https)
    return app


def self_signed(hosts: list[str], days: int = 365) -> tuple[bytes, bytes]:
    """A self-signed certificate for `hosts` (names or IP addresses; the first is its subject) and
    its RSA-2048 key, both PEM: for a first run and for tests, never for clients that must trust
    the node (give those a certificate from a CA they trust)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_self_signed(directory: Path, hosts: list[str], days: int = 365) -> tuple[Path, Path]:
    """cert.pem and key.pem (0600, created so from the start) in `directory`."""
    cert_pem, key_pem = self_signed(hosts, days)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key_pem)
    os.chmod(key_path, 0o600)  # an existing file keeps its old mode through O_CREAT
    cert_path.write_bytes(cert_pem)
    return cert_path, key_path
