"""Every typed application key of the node, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from resolver.cache import Lookup
from resolver.config import Config
from resolver.http.ratelimit import RateLimiter
from resolver.http.scan import MissingOwners
from resolver.keys import Signers
from resolver.metrics import NodeMetrics
from resolver.services.accounts import Accounts
from resolver.services.authentication import Authenticator
from resolver.services.batches import Batches
from resolver.services.console_operators import ConsoleOperators
from resolver.services.enterprises import Operators
from resolver.services.handle_sessions import HandleSessions
from resolver.services.registry import Registry
from resolver.services.statistics import DailyCounter
from resolver.services.templates import TemplateRegistry
from resolver.services.uploads import Uploads
from resolver.store.handles import HandleStore
from resolver.upstream.recursion import RecursiveResolver
from resolver.upstream.toplevel import Upstream

if TYPE_CHECKING:  # the native listeners and the search handler read these keys themselves
    from resolver.http.search import Searches
    from resolver.native.listeners import NativeListeners

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", HandleStore)
LOOKUP = web.AppKey("lookup", Lookup)
REGISTRY = web.AppKey("registry", Registry)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
SCHEMA_VERSION = web.AppKey("schema_version", int)
ACCOUNTS = web.AppKey("accounts", Accounts)
BATCHES = web.AppKey("batches", Batches)
OPERATORS = web.AppKey("operators", Operators)
TEMPLATES = web.AppKey("templates", TemplateRegistry)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
METRICS = web.AppKey("metrics", NodeMetrics)
DAILY = web.AppKey("daily", DailyCounter)
UPSTREAM: web.AppKey[Upstream | None] = web.AppKey("upstream")
RECURSIVE: web.AppKey[RecursiveResolver | None] = web.AppKey("recursive")
NATIVE: web.AppKey[NativeListeners | None] = web.AppKey("native")
SEARCHES: web.AppKey[Searches] = web.AppKey("searches")
MISSING_OWNERS = web.AppKey("missing_owners", MissingOwners)
NODE_KEYS = web.AppKey("node_keys", Signers)
HANDLE_SESSIONS = web.AppKey("handle_sessions", HandleSessions)
UPLOADS = web.AppKey("uploads", Uploads)
CONSOLE_OPERATORS = web.AppKey("console_operators", ConsoleOperators)
