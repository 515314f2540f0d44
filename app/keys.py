"""Typed keys of the aiohttp application's shared state, all in one place."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from app.config import Settings
from eventstore import EventStore, Listener, Notifier

SETTINGS = web.AppKey("settings", Settings)
DATABASE_URL = web.AppKey("database_url", str)
POOL = web.AppKey("pool", asyncpg.Pool)
NOTIFIER = web.AppKey("notifier", Notifier)
STORE = web.AppKey("store", EventStore)
LISTENER = web.AppKey("listener", Listener)
