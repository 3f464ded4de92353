"""Node configuration: one frozen dataclass built from command-line options and the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


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

    max_handle_length: int = 255
    max_prefix_length: int = 64
    max_values_per_handle: int = 256
    max_value_bytes: int = 16_384
    max_type_length: int = 128
    max_body_bytes: int = 1_048_576
    max_batch_body_bytes: int = 16_777_216
    max_page_size: int = 10_000
    max_index: int = 2_147_483_647


@dataclass(frozen=True)
class CacheSettings:
    """Bounds of each worker's resolution cache."""

    max_entries: int = 200_000
    max_bytes: int = 256 * 1024 * 1024
    max_ttl: float = 600.0
    # The shortest time a handle stays cached, whatever its TTL says (a TTL of 0 would make every
    # resolution a database read). Changes still invalidate the entry at once (resolver/store/feed.py).
    ttl_floor: float = 1.0
    negative_entries: int = 50_000
    negative_ttl: float = 5.0


@dataclass(frozen=True)
class RateLimits:
    """Token buckets (requests per second and burst), per client address and per credential.

    Resolution requests count only against `resolve_per_address`, which is off (0) by default so
    that the hot path pays nothing; every other request counts against both of the others.
    """

    per_address: float = 200.0
    per_address_burst: int = 400
    per_credential: float = 100.0
    per_credential_burst: int = 200
    resolve_per_address: float = 0.0
    resolve_per_address_burst: int = 0
    # Failed authentications (wrong secrets, unknown identities, invalid tokens), counted before
    # any hash is computed: per identity and client address, per address, and (looser) per identity.
    # An address where an identity authenticated recently is exempt from that identity's own limit,
    # so failures from elsewhere cannot lock its owner out.
    failed_auth_per_identity_address: float = 0.1
    failed_auth_per_identity_address_burst: int = 10
    failed_auth_per_address: float = 0.2
    failed_auth_per_address_burst: int = 20
    failed_auth_per_identity: float = 0.5
    failed_auth_per_identity_burst: int = 20


@dataclass(frozen=True)
class Config:
    """Everything a node process needs to run."""

    node_prefix: str = "88.123"
    admin_secret: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    dsn: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    pool_min: int = 2
    pool_max: int = 10
    reader_connections: int = 2
    shutdown_timeout: float = 10.0
    # Slow clients: a new connection's first request header must arrive within header_timeout,
    # an idle keep-alive connection (or a later header) is closed after keepalive_timeout, a body
    # must arrive within body_timeout; one client address holds at most this many connections
    # of the node (each worker its share; 0: no cap).
    header_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    body_timeout: float = 60.0
    max_connections_per_address: int = 256
    access_log: bool = False
    # The Server header of every answer; aiohttp's default names the Python and aiohttp versions.
    server_header: str = "resolver"
    limits: Limits = field(default_factory=Limits)
    cache: CacheSettings = field(default_factory=CacheSettings)
    # How long a database call may take before the request is answered with 503.
    db_timeout: float = 5.0
    # Value types that reverse lookup (/hrls/handles) can search, case-folded.
    search_types: tuple[str, ...] = ("url", "checksum")
    # Reverse lookup is bounded (resolver/http/search.py): searches running at once in a worker,
    # one tenant's at once in the node (every worker and instance; more are refused with 429), and
    # the seconds a search may take once admitted, its wait for a turn included (then 503).
    search_concurrency: int = 2
    search_per_credential: int = 1
    search_timeout: float = 2.0
    # Most items in one enterprise API batch call.
    max_batch_items: int = 2000
    # Lifetime of an enterprise API bearer token, in seconds.
    token_ttl: float = 86400.0
    rate: RateLimits = field(default_factory=lambda: RateLimits())
    # The national top-level node (or its simulator): where prefix records and statistics go.
    upstream_url: str | None = None
    upstream_user: str | None = None
    upstream_secret: str | None = None
    # This node's resolution address as others reach it (for its HS_SITE); default http://host:port.
    public_url: str | None = None
    # Resolve handles of other nodes by asking the top-level node where their prefix lives.
    recursive: bool = False
    recursive_timeout: float = 3.0
    recursive_concurrency: int = 64
    # What recursion may contact and keep (resolver/upstream/recursion.py): site addresses in these networks
    # even when loopback, private or link-local (which are refused otherwise); the largest answer
    # read; the bytes its caches may hold per worker; the shortest and the negative lifetimes of
    # what it caches; the most prefix components it asks the top-level node about.
    recursive_allow: tuple[str, ...] = ()
    recursive_max_bytes: int = 1_048_576
    recursive_cache_bytes: int = 64 * 1024 * 1024
    recursive_ttl_floor: float = 1.0
    recursive_negative_ttl: float = 10.0
    recursive_max_depth: int = 5
    # The native Handle protocol (UDP and TCP) on this port; 0 switches it off.
    native_port: int = 2641
    # Response rate limiting of native UDP answers per client network (/24, /56): answers a second
    # (0: off) and burst; past them every `native_udp_slip`-th request gets a short "use TCP" error
    # (0: none) and the others no answer.
    native_udp_rate: float = 100.0
    native_udp_burst: int = 200
    native_udp_slip: int = 2
    # A Postgres replica for cache misses; writes and auth=true reads always use `dsn`.
    read_dsn: str | None = None
    # After a handle changes, this worker reads it from the primary for this long (replica lag).
    read_your_writes_seconds: float = 5.0

    @property
    def public_base(self) -> str:
        """This node's address as clients reach it, without a trailing slash: --public-url, or
        http://HOST:PORT. Never taken from a request (see resolver/http/scan.py)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
