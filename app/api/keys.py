"""Typed keys of the aiohttp application's shared state, all in one place."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from flowlog.access.oidc import OidcClient
from flowlog.access.ring import KeyRing
from flowlog.api.metrics import Metrics
from flowlog.config import Settings
from flowlog.engine import Engine
from flowlog.roles import DatabaseUrls
from flowlog.workflow.definition import Registry

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", DatabaseUrls)
REGISTRY = web.AppKey("registry", Registry)
ENGINE = web.AppKey("engine", Engine)
ACCESS = web.AppKey("access", KeyRing)
"""Who may call: keys, FLOWLOG_TOKENS, console sessions (app/access/ring.py)."""
OIDC = web.AppKey("oidc", OidcClient)
"""The identity provider's client, with single sign-on only (app/console/oidc.py)."""
METRICS = web.AppKey("metrics", Metrics)
OPENAPI = web.AppKey("openapi", dict[str, Any])
SHUTTING_DOWN = web.AppKey("shutting_down", asyncio.Event)
"""Set when the server begins to shut down: long-lived answers (event streams) end."""
