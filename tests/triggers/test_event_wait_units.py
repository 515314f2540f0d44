"""The pure parts of waiting for an event: the node's setting and its checks, the match
rendered into NodeWaiting (or the node failed, 40155), and the result an event leaves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import pytest
from pydantic import JsonValue

from flowlog.projections.rows import APPEND_TIME
from flowlog.triggers.waits import MAX_RESULT, event_result
from flowlog.workflow.commands import RecordWaiting
from flowlog.workflow.decide import decide
from flowlog.workflow.definition import NodeDefinition, WorkflowDefinition
from flowlog.workflow.errors import Code, InvalidDefinition
from flowlog.workflow.event_waits import EventWait
from flowlog.workflow.events import (
    FlowCreated,
    FlowEvent,
    FlowStarted,
    NodeFailed,
    NodeStarted,
    NodeWaiting,
)
from flowlog.workflow.fold import evolve, fold, retimed
from flowlog.workflow.state import FlowState
from tests.workflow.defs import noop
from tests.workflow.test_waiting import Approvals, approval_flow

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def definition(match: dict[str, JsonValue], *, kind: str = "callback") -> WorkflowDefinition:
    return WorkflowDefinition("w", {
        "start": NodeDefinition("wait", noop, kind=kind, success="", fail="handle",
                                event=EventWait("backup.verified", match)),
        "handle": NodeDefinition("handle", noop),
    })  # fmt: skip


def started(context: dict[str, JsonValue], definition: WorkflowDefinition) -> FlowState:
    history: list[FlowEvent] = [
        FlowCreated(flow_id="f", name="w", biz_id="b", biz_type="t",
                    definition_version=definition.version, context=context),
        FlowStarted(),
        NodeStarted(node_id="f.1", key="start", name="wait", kind="callback", attempt=1),
    ]  # fmt: skip
    state = fold((event, NOW) for event in history)
    assert state is not None
    return state


def test_the_match_is_rendered_from_the_context_with_the_executors_changes() -> None:
    wanted = definition({"id": "{{context.id}}", "n": "{{context.n}}", "at": "r-{{context.r}}"})
    state = started({"id": "c-1", "n": 5, "r": "x", "gone": 1}, wanted)
    waiting = RecordWaiting("f.1", callback="tok", changes={"r": "eu"}, removed=("gone",))
    [event] = decide(state, waiting, wanted, NOW)
    assert isinstance(event, NodeWaiting)
    assert event.event == {"type": "backup.verified",
                           "match": {"id": "c-1", "n": 5, "at": "r-eu"}}  # fmt: skip
    later = datetime(2026, 12, 6, 12, 5, tzinfo=UTC)
    after = evolve(state, event, later)
    assert after.running_node is not None
    assert after.running_node.event == event.event
    assert after.running_node.waiting_since == later
    assert retimed(evolve(state, event, APPEND_TIME), APPEND_TIME, later) == after


def test_a_value_the_context_lacks_fails_the_node_through_its_fail_transition() -> None:
    wanted = definition({"id": "{{context.gone}}"})
    state = started({"gone": 1}, wanted)
    [event] = decide(state, RecordWaiting("f.1", removed=("gone",)), wanted, NOW)
    assert isinstance(event, NodeFailed)
    assert event.error_code == Code.EVENT_MATCH_MISSING
    assert "context.gone" in event.error_message
    assert event.next == "handle"
    assert event.context_removed == ["gone"]


def test_a_node_without_an_event_records_none() -> None:
    plain = WorkflowDefinition("w", {"start": NodeDefinition("wait", noop, kind="callback")})
    state = started({}, plain)
    [event] = decide(state, RecordWaiting("f.1", callback="tok"), plain, NOW)
    assert isinstance(event, NodeWaiting)
    assert event.event is None
    assert "event" not in event.model_dump(mode="json")  # histories stay as they were


@pytest.mark.parametrize(
    ("wait", "says"),
    [
        (EventWait("", {}), "1 to 256 characters"),
        (EventWait("t" * 257, {}), "1 to 256 characters"),
        (EventWait("t\x00", {}), "NUL"),
        (EventWait("t", [1]), "a JSON object"),  # type: ignore[arg-type]
        (EventWait("t", {f"k{i}": {"x": 1} for i in range(33)}), "66 keys"),
        (EventWait("t", {"k": "{{flow.id}}"}), "unknown name"),
        (EventWait("t", {"k": "{{context..x}}"}), "is no path"),
        (EventWait("t", {"k": "x" * 17_000}), "bytes of JSON"),
        (EventWait("t", {"k": object()}), "not JSON"),  # type: ignore[dict-item]
    ],
)
def test_a_wrong_event_makes_a_wrong_definition(wait: EventWait, says: str) -> None:
    with pytest.raises(InvalidDefinition) as refused:
        WorkflowDefinition("w", {"start": NodeDefinition("a", noop, kind="callback",
                                                         event=wait)})  # fmt: skip
    assert says in str(refused.value)


def test_only_a_callback_node_waits_for_an_event() -> None:
    for kind in ("sync", "timer", "polling"):
        with pytest.raises(InvalidDefinition, match="only a callback node waits for an event"):
            definition({}, kind=kind)


@dataclass(frozen=True, slots=True)
class Sent:
    id: str = "e-1"
    source: str = "urn:s"
    type: str = "t"
    subject: str | None = None
    time: datetime | None = None
    data: JsonValue = None


def test_the_result_carries_the_event_and_its_data_unless_too_long() -> None:
    small = orjson.loads(event_result(Sent(data={"a": 1}, time=NOW)))
    assert small == {"event": {"id": "e-1", "source": "urn:s", "type": "t", "subject": None,
                               "time": "2026-12-06T12:00:00+00:00"}, "data": {"a": 1}}  # fmt: skip
    large = event_result(Sent(data={"a": "x" * MAX_RESULT}))
    assert orjson.loads(large) == {"event": {"id": "e-1", "source": "urn:s", "type": "t",
                                             "subject": None, "time": None},
                                   "dataOmitted": True}  # fmt: skip
    assert event_result(Sent(data={"n": 2**70})).startswith('{"event"')
    assert "dataOmitted" in event_result(Sent(data={"n": 2**70}))


def test_the_version_of_a_callback_definition_in_code_is_unchanged() -> None:
    """Computed by the release before events: its running flows stay claimable."""
    assert approval_flow(Approvals(), deadline=30).version == "179260e098819b6e"
    assert "event" not in approval_flow(Approvals()).describe()["nodes"]["approve"]
