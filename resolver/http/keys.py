"""Every typed application key of the node, in one place."""

from __future__ import annotations

from aiohttp import web

from resolver.auth import Authenticator
from resolver.cache import Lookup
from resolver.config import Config
from resolver.registry import Registry
from resolver.store.db import HandleStore

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", HandleStore)
LOOKUP = web.AppKey("lookup", Lookup)
REGISTRY = web.AppKey("registry", Registry)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
SCHEMA_VERSION = web.AppKey("schema_version", int)
