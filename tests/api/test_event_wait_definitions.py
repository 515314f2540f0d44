"""Callback nodes that wait for an event, registered over REST: the spec's ``event`` is
checked (only on callback nodes, a type of 1 to 256 characters, a match of at most 64 keys
whose templates name the context), refused in the envelope with nothing registered, and left
out of the stored spec (and so of the version) of every node without it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowlog.builtins import definition_from_spec
from flowlog.wire.definitions import DefinitionSpec
from flowlog.workflow.errors import Code
from tests.api.helpers import DEFINITIONS, Client, create, ok, refused, wait_status
from tests.api.test_definitions import NOOP, node, register, spec

WAIT = {"type": "backup.verified", "match": {"clusterId": "{{context.clusterId}}"}}


def waiting_spec(name: str = "verify", **callback: Any) -> dict[str, Any]:
    waits = {"name": "verified", "kind": "callback", "event": WAIT, "success": "done",
             **callback}  # fmt: skip
    return spec(name, start=waits, done=node("done", NOOP))


def nested(depth: int) -> dict[str, Any]:
    match: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        match = {"in": match}
    return match


WRONG: list[tuple[dict[str, Any], int, str]] = [
    (spec("w", start=node("a", NOOP, event=WAIT)), Code.INVALID_DEFINITION,
     "only a callback node waits for an event"),
    (spec("w", start=node("a", {"type": "sleep", "seconds": 1}, kind="timer", event=WAIT)),
     Code.INVALID_DEFINITION, "only a callback node waits for an event"),
    (waiting_spec(event={"type": "t", "match": {"id": "{{data.id}}"}}),
     Code.INVALID_DEFINITION, "starts with an unknown name"),
    (waiting_spec(event={"type": "t", "match": {"id": "{{context.}}"}}),
     Code.INVALID_DEFINITION, "is no path"),
    (waiting_spec(event={"type": "t", "match": {"a": {"b": {f"k{i}": i for i in range(64)}}}}),
     Code.INVALID_DEFINITION, "66 keys, more than 64"),
    (waiting_spec(event={"type": "t", "match": nested(20)}), Code.INVALID_DEFINITION,
     "nested deeper than 16"),
    (waiting_spec(event={"type": "t", "match": {"big": "x" * 20_000}}),
     Code.INVALID_DEFINITION, "more than 16384"),
    (waiting_spec(event={"type": "t", "match": {f"k{i}": i for i in range(65)}}),
     Code.BAD_INPUT, "match"),
    (waiting_spec(event={"type": "", "match": {}}), Code.BAD_INPUT, "type"),
    (waiting_spec(event={"type": "t" * 257, "match": {}}), Code.BAD_INPUT, "type"),
    (waiting_spec(event={"type": "t"}), Code.BAD_INPUT, "match"),
    (waiting_spec(event={"type": "t", "match": [1]}), Code.BAD_INPUT, "match"),
    (waiting_spec(event={"type": "t", "match": {}, "extra": 1}), Code.BAD_INPUT, "extra"),
    (waiting_spec(event={"type": "t\u0000", "match": {}}), Code.BAD_INPUT, ""),
    (waiting_spec(event={"type": "t", "match": {"n": 2**70}}), Code.BAD_INPUT, ""),
]  # fmt: skip


@pytest.mark.parametrize(("body", "code", "says"), WRONG)
async def test_a_wrong_event_is_refused_and_registers_nothing(
    client: Client, body: dict[str, Any], code: int, says: str
) -> None:
    # The standard library writes integers beyond 64 bits (orjson refuses to).
    sent = await client.post(DEFINITIONS, data=json.dumps(body),
                             headers={"Content-Type": "application/json"})  # fmt: skip
    refusal = await refused(sent, 400, code)
    assert says in refusal["message"], refusal
    await refused(await client.get(f"{DEFINITIONS}/{body['name']}"), 404, Code.DEFINE_NOT_FOUND)


async def test_a_callback_node_with_an_event_registers_and_waits(client: Client) -> None:
    registered = await register(client, waiting_spec())
    described = await ok(await client.get(f"{DEFINITIONS}/verify"))
    stored = described["versions"][-1]["definition"]
    assert stored["nodes"]["start"]["event"] == WAIT
    assert stored["spec"]["nodes"]["start"]["event"] == WAIT
    assert registered["version"] == definition_from_spec(waiting_spec()).version
    # A missing context value fails the node (40155) through its fail path.
    flow_id = await create(client, "verify")
    ended = await wait_status(client, flow_id, {"Error"})
    assert ended["nodes"][-1]["errorCode"] == Code.EVENT_MATCH_MISSING


def test_versions_of_definitions_without_an_event_are_unchanged() -> None:
    """The version of a callback node's definition (a deadline, an http executor) as the
    release before events computed it: its running flows stay claimable."""
    before = spec(
        "approve-release",
        start=node("ask", {"type": "http", "url": "http://127.0.0.1:9/ask"}, kind="callback",
                   deadline=600, success="ship", fail="drop"),
        ship=node("ship", NOOP),
        drop=node("drop", {"type": "fail", "message": "rejected"}),
    )  # fmt: skip
    dumped = DefinitionSpec.model_validate(before).model_dump(mode="json")
    assert "event" not in dumped["nodes"]["start"]
    definition = definition_from_spec(before)
    assert "event" not in definition.describe()["nodes"]["start"]
    assert definition.version == "bb76644e1ae54efa"  # computed by the release before
    with_event = dict(before["nodes"]["start"], event=WAIT)
    changed = spec("approve-release", **{**before["nodes"], "start": with_event})
    assert definition_from_spec(changed).version != definition.version
