"""Typed keys of the aiohttp application's shared state, all in one place."""

from __future__ import annotations

from aiohttp import web

from app.config import Settings
from app.workflow.definition import Registry
from app.workflow.engine import Engine

SETTINGS = web.AppKey("settings", Settings)
DATABASE_URL = web.AppKey("database_url", str)
REGISTRY = web.AppKey("registry", Registry)
ENGINE = web.AppKey("engine", Engine)
