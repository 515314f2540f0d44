"""Definitions and engines for the delivery tests: engines that deliver webhooks to
127.0.0.1 with short leases and quick retries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from flowlog.engine import Engine
from flowlog.webhooks.allow import AllowList
from flowlog.webhooks.sender import DeliveryTuning
from flowlog.webhooks.settings import WebhookSettings
from flowlog.workflow.definition import NodeDefinition, WorkflowDefinition
from flowlog.workflow.executor import FlowContext, NodeHandle
from tests.workflow.defs import noop


async def boom(node: NodeHandle, ctx: FlowContext) -> None:
    raise RuntimeError("boom")


FAILING = WorkflowDefinition("failing", {"start": NodeDefinition("explode", boom)})
PASSING = WorkflowDefinition(
    "passing",
    {"start": NodeDefinition("one", noop, success="two"), "two": NodeDefinition("two", noop)},
)
DEFINITIONS = (FAILING, PASSING)

LOCAL = WebhookSettings(allow=AllowList.parse("127.0.0.1"), timeout=2.0)
QUICK = DeliveryTuning(lease_seconds=2.0, poll_seconds=0.1, first_retry=0.05, max_retry=0.2)

StartDelivering = Callable[..., Awaitable[Engine]]
