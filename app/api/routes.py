"""Every operation of the REST API, on one ``Api``: each resource's routes (app/api/flows.py,
history.py, definitions.py, ops.py, schedules.py, tasks.py, access_keys.py, triggers.py,
webhooks.py), in the order they are installed (aiohttp matches them in that order) and
documented."""

from __future__ import annotations

from flowlog.api import (
    access_keys,
    definitions,
    flows,
    history,
    ops,
    schedules,
    tasks,
    triggers,
    webhook_deliveries,
    webhooks,
)
from flowlog.api.operations import Api

api = Api(
    [
        *flows.api.operations,
        *history.api.operations,
        *definitions.api.operations,
        *ops.api.operations,
        *schedules.api.operations,
        *tasks.api.operations,
        *access_keys.api.operations,
        *triggers.api.operations,
        *webhooks.api.operations,
        *webhook_deliveries.api.operations,
    ]
)
