"""Node configuration: frozen dataclasses, each setting defined once.

A field with `metadata=setting(help)` is a setting: its command-line option (`--` and the field's
name with dashes, after the group's OPTION_PREFIX), its environment variable (`RESOLVER_` and the
option in capitals), its default (the field's) and its help are all derived from the field
(`settings()`); `resolver.cli` builds every command's options from them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from resolver.config_kinds import (
    _KINDS,
    Setting,
    parse_bool,
    parse_header_value,
    parse_log_format,
    parse_networks,
    parse_origins,
    parse_record_key,
    parse_time_zone,
    parse_types,
    setting,
)

__all__ = ["CacheSettings", "Config", "Limits", "RateLimits", "Setting", "settings"]


def default_data_dir() -> Path:
    """Where the embedded Postgres keeps its data when neither a DSN nor a data dir is given.

    As root, Postgres runs as an unprivileged user that must be able to reach the folder, so the
    default is under /var/lib rather than root's home (which would have to be opened up).
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/idis-resolver")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "idis-resolver"


@dataclass(frozen=True)
class Limits:
    """Every input limit of the node, each with the error a client gets when it is exceeded."""

    max_handle_length: int = field(default=255, metadata=setting("longest handle in characters"))
    max_prefix_length: int = field(default=64, metadata=setting("longest prefix in characters"))
    max_values_per_handle: int = field(default=256, metadata=setting("most values in one handle"))
    max_value_bytes: int = field(default=16_384, metadata=setting("largest value data in bytes (as JSON)"))
    max_type_length: int = field(default=128, metadata=setting("longest value type"))
    max_body_bytes: int = field(default=1_048_576, metadata=setting("largest request body in bytes"))
    max_batch_body_bytes: int = field(
        default=16_777_216, metadata=setting("largest batch request body in bytes")
    )
    max_page_size: int = field(default=10_000, metadata=setting("most handles in one listing page"))
    max_index: int = 2_147_483_647


@dataclass(frozen=True)
class CacheSettings:
    """Bounds of each worker's resolution cache."""

    OPTION_PREFIX: ClassVar[str] = "cache-"

    max_entries: int = field(default=200_000, metadata=setting("cached handles per worker"))
    max_bytes: int = field(default=256 * 1024 * 1024, metadata=setting("cache size per worker in bytes"))
    max_ttl: float = field(default=600.0, metadata=setting("longest time in seconds a handle stays cached"))
    # The shortest time a handle stays cached, whatever its TTL says (a TTL of 0 would make every
    # resolution a database read). Changes still invalidate the entry at once (resolver/store/feed.py).
    ttl_floor: float = field(
        default=1.0,
        metadata=setting(
            "shortest time in seconds a handle stays cached, whatever its TTL (changes invalidate it at once)"
        ),
    )
    negative_entries: int = field(default=50_000, metadata=setting("remembered unknown handles per worker"))
    negative_ttl: float = field(default=5.0, metadata=setting("seconds an unknown handle is remembered"))


@dataclass(frozen=True)
class RateLimits:
    """Token buckets (requests per second and burst), per client address and per credential.

    Resolution requests count only against `resolve_per_address`, which is off (0) by default so
    that the hot path pays nothing; every other request counts against both of the others.
    """

    OPTION_PREFIX: ClassVar[str] = "rate-"

    per_address: float = field(
        default=200.0, metadata=setting("requests/s per client address (not counting resolutions; 0 = off)")
    )
    per_address_burst: int = field(default=400, metadata=setting("burst of the per-address limit"))
    per_credential: float = field(default=100.0, metadata=setting("requests/s per credential (0 = off)"))
    per_credential_burst: int = field(default=200, metadata=setting("burst of the per-credential limit"))
    resolve_per_address: float = field(
        default=0.0, metadata=setting("resolutions/s per client address that reach the database (0 = off)")
    )
    resolve_per_address_burst: int = field(default=0, metadata=setting("burst of the resolution limit"))
    # A certified (signed) native answer costs some ten plain ones: bounded per client address.
    certified_per_address: float = field(
        default=20.0, metadata=setting("certified (signed) native answers/s per client address (0 = off)")
    )
    certified_per_address_burst: int = field(
        default=40, metadata=setting("burst of the certified-answer limit")
    )
    # Failed authentications (wrong secrets, unknown identities, invalid tokens), counted before
    # any hash is computed: per identity and client address, per address, and (looser) per identity.
    # An address where an identity authenticated recently is exempt from that identity's own limit,
    # so failures from elsewhere cannot lock its owner out.
    failed_auth_per_identity_address: float = field(
        default=0.1, metadata=setting("failed authentications/s per identity and client address (0 = off)")
    )
    failed_auth_per_identity_address_burst: int = field(
        default=10, metadata=setting("burst of the per-identity-and-address failed authentication limit")
    )
    failed_auth_per_address: float = field(
        default=0.2, metadata=setting("failed authentications/s per client address, any identity (0 = off)")
    )
    failed_auth_per_address_burst: int = field(
        default=20, metadata=setting("burst of the per-address failed authentication limit")
    )
    failed_auth_per_identity: float = field(
        default=0.5,
        metadata=setting(
            "failed authentications/s per identity, any address; addresses where it authenticated recently are exempt (0 = off)"
        ),
    )
    failed_auth_per_identity_burst: int = field(
        default=20, metadata=setting("burst of the per-identity failed authentication limit")
    )


@dataclass(frozen=True)
class Config:
    """Everything a node process needs to run."""

    node_prefix: str = field(default="88.123", metadata=setting("the prefix this node serves"))
    admin_secret: str | None = field(
        default=None,
        metadata=setting("secret of the node administrator 300:0.NA/<node prefix> (needed on first start)"),
    )
    host: str = field(default="127.0.0.1", metadata=setting("address to listen on"))
    port: int = field(default=8000, metadata=setting("port to listen on"))
    workers: int = field(default_factory=lambda: os.cpu_count() or 1, metadata=setting("worker processes"))
    dsn: str | None = field(
        default=None, metadata=setting("Postgres URL; without it an embedded Postgres is started")
    )
    data_dir: Path = field(
        default_factory=default_data_dir, metadata=setting("where the embedded Postgres keeps its data")
    )
    pool_min: int = 2
    pool_max: int = field(default=10, metadata=setting("write connections per worker"))
    reader_connections: int = field(default=2, metadata=setting("lookup connections per worker"))
    shutdown_timeout: float = field(
        default=10.0, metadata=setting("seconds in-flight requests get to finish on SIGTERM")
    )
    # Slow clients: a new connection's first request header must arrive within header_timeout,
    # an idle keep-alive connection (or a later header) is closed after keepalive_timeout, a body
    # must arrive within body_timeout; one client address holds at most this many connections
    # of the node (each worker its share; 0: no cap).
    header_timeout: float = field(
        default=10.0,
        metadata=setting("seconds a new connection has to send its first request header (0: no limit)"),
    )
    keepalive_timeout: float = field(
        default=15.0,
        metadata=setting("seconds an idle keep-alive connection (or a later request's header) may take"),
    )
    body_timeout: float = field(
        default=60.0, metadata=setting("seconds a request body may take to arrive (408 after that)")
    )
    max_connections_per_address: int = field(
        default=256,
        metadata=setting(
            "connections one client address may hold open, for the node (0: no cap; behind a proxy, set it above the proxy's connection pool)"
        ),
    )
    access_log: bool = field(default=False, metadata=setting("log every request (slow)", kind=parse_bool))
    # The Server header of every answer; aiohttp's default names the Python and aiohttp versions.
    server_header: str = field(
        default="resolver",
        metadata=setting(
            "the Server header of every answer (aiohttp's own names the Python and aiohttp versions)",
            kind=parse_header_value,
        ),
    )
    # the newest current key of this type signs records of signed prefixes (native answers: RSA)
    record_key: str = field(
        default="rsa",
        metadata=setting("key type that signs records of signed prefixes: rsa or sm2", kind=parse_record_key),
    )
    log_format: str = field(
        default="text",
        metadata=setting("log lines as text or as one JSON object each (json)", kind=parse_log_format),
    )
    # Behind a TLS-terminating load balancer: only from these networks are X-Forwarded-For,
    # X-Forwarded-Proto and X-Forwarded-Host believed (client address, scheme and host of links).
    trusted_proxies: tuple[str, ...] = field(
        default=(),
        metadata=setting(
            "networks (comma-separated CIDRs) of proxies whose X-Forwarded-For/-Proto/-Host are believed",
            kind=parse_networks,
        ),
    )
    # CORS: resolution is readable from any origin; writes only from these origins (`*`: any).
    cors_origins: tuple[str, ...] = field(
        default=(),
        metadata=setting(
            "web origins (comma-separated, e.g. https://erp.example.com) whose pages may write through the APIs; resolution is readable from any origin",
            kind=parse_origins,
        ),
    )
    # Times on the scan page and the portal are shown in this zone.
    time_zone: str = field(
        default="Asia/Shanghai",
        metadata=setting("time zone of times shown to people (scan page)", kind=parse_time_zone),
    )
    # HTTPS on the HTTP port (resolver/http/tls.py): both files, PEM; SIGHUP loads them again.
    tls_cert: str | None = field(
        default=None,
        metadata=setting(
            "PEM certificate chain: with --tls-key the HTTP port speaks HTTPS (reloaded on SIGHUP)"
        ),
    )
    tls_key: str | None = field(default=None, metadata=setting("PEM private key of --tls-cert"))
    # The node's key pairs (resolver/keys.py), outside the database; default <data-dir>-keys.
    key_dir: str | None = field(
        default=None,
        metadata=setting(
            "directory of the node's key pairs (resolver keys), kept out of the database; default DATA_DIR-keys"
        ),
    )
    http_redirect_port: int = field(
        default=0, metadata=setting("with TLS, a plain-HTTP port that only redirects to HTTPS (0: none)")
    )
    limits: Limits = field(default_factory=Limits)
    cache: CacheSettings = field(default_factory=CacheSettings)
    # How long a database call may take before the request is answered with 503.
    db_timeout: float = field(
        default=5.0, metadata=setting("seconds a database call may take before answering 503")
    )
    # Value types that reverse lookup (/hrls/handles) can search, case-folded.
    search_types: tuple[str, ...] = field(
        default=("url", "checksum"),
        metadata=setting("value types reverse lookup can search (comma-separated)", kind=parse_types),
    )
    # Reverse lookup is bounded (resolver/http/search.py): searches running at once in a worker,
    # one tenant's at once in the node (every worker and instance; more are refused with 429), and
    # the seconds a search may take once admitted, its wait for a turn included (then 503).
    search_concurrency: int = field(
        default=2, metadata=setting("reverse lookups running at once, per worker (others wait their turn)")
    )
    search_per_credential: int = field(
        default=1,
        metadata=setting(
            "reverse lookups one tenant may run at once in the node, all workers and instances (more: 429)"
        ),
    )
    search_timeout: float = field(
        default=2.0,
        metadata=setting("seconds a reverse lookup may take, its wait included, before it is stopped (503)"),
    )
    # Most items in one enterprise API batch call.
    max_batch_items: int = field(
        default=2000, metadata=setting("most items in one enterprise API batch call")
    )
    # Lifetime of an enterprise API bearer token, in seconds.
    token_ttl: float = field(default=86400.0, metadata=setting("seconds an enterprise API token stays valid"))
    handle_session_ttl: float = field(
        default=3600.0, metadata=setting("seconds a session of the Handle API (/api/sessions) stays valid")
    )
    rate: RateLimits = field(default_factory=lambda: RateLimits())
    # The national top-level node (or its simulator): where prefix records and statistics go.
    upstream_url: str | None = field(
        default=None,
        metadata=setting("the top-level node (or its simulator) that receives prefix records and statistics"),
    )
    upstream_user: str | None = field(default=None, metadata=setting("account at the top-level node"))
    upstream_secret: str | None = field(default=None, metadata=setting("its secret"))
    # This node's resolution address as others reach it (for its HS_SITE); default http://host:port.
    public_url: str | None = field(
        default=None,
        metadata=setting(
            "this node's address as others reach it (HS_SITE, scan pages, QR codes); default http://HOST:PORT (https with TLS)"
        ),
    )
    # Resolve handles of other nodes by asking the top-level node where their prefix lives.
    recursive: bool = field(
        default=False,
        metadata=setting("resolve other nodes' handles through the top-level node", kind=parse_bool),
    )
    recursive_timeout: float = field(
        default=3.0, metadata=setting("seconds each hop of a recursive resolution may take")
    )
    recursive_concurrency: int = field(
        default=64, metadata=setting("most upstream requests of recursive resolution at once, per worker")
    )
    # What recursion may contact and keep (resolver/upstream/recursion.py): site addresses in these networks
    # even when loopback, private or link-local (which are refused otherwise); the largest answer
    # read; the bytes its caches may hold per worker; the shortest and the negative lifetimes of
    # what it caches; the most prefix components it asks the top-level node about.
    recursive_allow: tuple[str, ...] = field(
        default=(),
        metadata=setting(
            "networks (comma-separated CIDRs) recursion may contact although they are loopback, private or link-local, which it refuses otherwise",
            kind=parse_networks,
        ),
    )
    recursive_max_bytes: int = field(
        default=1_048_576,
        metadata=setting(
            "largest answer recursion reads from another node, in bytes (a larger one fails the hop)"
        ),
    )
    recursive_cache_bytes: int = field(
        default=64 * 1024 * 1024,
        metadata=setting(
            "bytes per worker of what recursion caches (prefix sites and unreachable addresses get a sixteenth of it each, answers the rest)"
        ),
    )
    recursive_ttl_floor: float = field(
        default=1.0,
        metadata=setting(
            "shortest time in seconds recursion keeps a prefix site or an answer, whatever its TTL"
        ),
    )
    recursive_negative_ttl: float = field(
        default=10.0,
        metadata=setting("seconds recursion remembers an unknown prefix, an unknown handle or a failed hop"),
    )
    recursive_max_depth: int = field(
        default=5,
        metadata=setting(
            "most prefix components recursion asks the top-level node about (a deeper prefix is looked up by its first ones)"
        ),
    )
    # The native Handle protocol (UDP and TCP) on this port; 0 switches it off.
    native_port: int = field(
        default=2641, metadata=setting("UDP and TCP port of the native Handle protocol (0: off)")
    )
    # Response rate limiting of native UDP answers per client network (/24, /56): answers a second
    # (0: off) and burst; past them every `native_udp_slip`-th request gets a short "use TCP" error
    # (0: none) and the others no answer.
    native_udp_rate: float = field(
        default=100.0, metadata=setting("native UDP answers/s per client network, /24 or /56 (0 = off)")
    )
    native_udp_burst: int = field(default=200, metadata=setting("burst of the native UDP answer limit"))
    native_udp_slip: int = field(
        default=2,
        metadata=setting(
            "past the UDP limit, every Nth request gets a short 'use TCP' error, the rest none (0 = none)"
        ),
    )
    # A Postgres replica for cache misses; writes and auth=true reads always use `dsn`.
    read_dsn: str | None = field(
        default=None,
        metadata=setting("a Postgres replica for cache misses (writes and auth=true reads use --dsn)"),
    )
    # After a handle changes, this worker reads it from the primary for this long (replica lag).
    read_your_writes_seconds: float = 5.0
    # A write returns once every worker's cache confirmed it forgot the old values, or after this
    # long, when the caches that did not answer have stopped serving (resolver.store.coherence).
    coherence_wait: float = field(
        default=2.0,
        metadata=setting(
            "longest a write waits for every cache to confirm it forgot the old values; caches trust "
            "themselves only under a lease shorter than this (0 = do not wait, no lease)"
        ),
    )

    @property
    def keys_path(self) -> Path:
        """--key-dir, or a directory next to the embedded Postgres' data."""
        if self.key_dir:
            return Path(self.key_dir)
        data = Path(self.data_dir)
        return data.with_name(data.name + "-keys")

    @property
    def public_base(self) -> str:
        """This node's address as clients reach it, without a trailing slash: --public-url, or
        http://HOST:PORT. Never taken from a request (see resolver/http/scan.py)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls_cert else 'http'}://{host}:{self.port}"


def _fields(cls: type, group: str, prefix: str) -> Iterator[Setting]:
    instance = cls()
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        kind = f.metadata["kind"] or _KINDS[str(f.type)]
        default = getattr(instance, f.name)
        flag = f"--{prefix}{f.name.replace('_', '-')}"
        yield Setting(
            flag=flag,
            env="RESOLVER_" + flag[2:].upper().replace("-", "_"),
            target=f"{group}.{f.name}" if group else f.name,
            kind=kind,
            help=f.metadata["help"],
            default=default,
        )


def settings() -> list[Setting]:
    """Every setting, in the order the dataclasses define them (Config's, then its groups')."""
    found = list(_fields(Config, "", ""))
    for group, cls in (("limits", Limits), ("cache", CacheSettings), ("rate", RateLimits)):
        found += _fields(cls, group, getattr(cls, "OPTION_PREFIX", ""))
    return found
