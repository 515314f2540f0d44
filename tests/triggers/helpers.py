"""Sending CloudEvents with the ``cloudevents`` SDK (both HTTP modes), and rules over REST."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import ClientResponse
from cloudevents.core.bindings.http import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from tests.api.helpers import Client, Headers, ok, post

EVENTS = "/api/v1/events"
RULES = "/api/v1/event-rules"


def cloudevent(
    event_id: str = "e-1", *, type: str = "backup.requested", source: str = "/clusters",
    data: Any = None, **attributes: Any,
) -> CloudEvent:  # fmt: skip
    return CloudEvent({"id": event_id, "type": type, "source": source,
                       "datacontenttype": "application/json", **attributes}, data)  # fmt: skip


async def send(client: Client, event: CloudEvent, *, binary: bool = False,
               headers: Headers = None) -> ClientResponse:  # fmt: skip
    message = (to_binary if binary else to_structured)(event, JSONFormat())
    return await client.post(
        EVENTS, data=message.body, headers={**message.headers, **(headers or {})}
    )


async def accepted(response: ClientResponse) -> dict[str, Any]:
    """The answer's data, after checking it is 202 in the envelope."""
    text = await response.text()
    assert response.status == 202, text
    body = orjson.loads(text)
    assert body["code"] == 0
    data: dict[str, Any] = body["data"]
    return data


async def make_rule(client: Client, headers: Headers = None, **settings: Any) -> dict[str, Any]:
    body = {"type": "backup.requested", "flowName": "backup", "bizId": "{{data.clusterId}}",
            **settings}  # fmt: skip
    rule: dict[str, Any] = await ok(await post(client, RULES, body, headers))
    return rule
