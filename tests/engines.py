"""Engines for tests: short leases and heartbeats, since the tests wait for them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from flowlog.engine import Engine
from flowlog.workflow.reactor_settings import ReactorSettings

FAST = ReactorSettings(
    concurrency=16, lease_seconds=2.0, heartbeat_seconds=0.1, poll_interval=0.5, shutdown_grace=2
)

StartEngine = Callable[..., Awaitable[Engine]]
