"""The status a delivery names (app/webhooks/status.py) is the fold's, after every event of
random histories: only the last status-changing event is read, never the whole history."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flowlog.webhooks.status import STATUS_EVENTS, changes_status, status_after
from flowlog.workflow.definition import WorkflowDefinition
from flowlog.workflow.errors import StaleOutcome, WorkflowError
from flowlog.workflow.events import encode
from flowlog.workflow.fold import fold
from flowlog.workflow.state import FlowStatus
from tests.workflow.harness import created
from tests.workflow.test_properties import ACTIONS, DEFINITIONS, command_for


@settings(max_examples=300, deadline=None)
@given(
    definition=st.sampled_from(DEFINITIONS),
    actions=st.lists(ACTIONS, min_size=1, max_size=60),
)
def test_the_status_after_each_event_is_the_folds(
    definition: WorkflowDefinition, actions: list[object]
) -> None:
    memory = created(definition, a=0)
    for action in actions:
        command = command_for(memory, action)
        if command is None:
            continue
        try:
            memory.run(command)
        except (WorkflowError, StaleOutcome):
            continue
    history = memory.history
    status: str | None = None
    last_change: tuple[str, dict[str, object]] | None = None
    for index, (event, _at) in enumerate(history):
        event_type, data, _metadata = encode(event)
        status = status_after(status, event_type, data)
        folded = fold(history[: index + 1])
        assert folded is not None
        assert status == folded.status.value, (index, event_type)
        if changes_status(event_type, data) is not None:
            assert event_type in STATUS_EVENTS
            last_change = (event_type, data)
        # What the fan-out does for a batch that starts here: the status before it comes from
        # the last status-changing event alone.
        assert last_change is not None
        assert status_after(None, *last_change) == status


def test_a_pausing_failure_stops_the_flow_and_a_retried_one_does_not() -> None:
    stop = {"pause": True, "will_retry": False}
    assert status_after("Processing", "NodeFailed", stop) == FlowStatus.STOPPED.value
    retry = {"pause": True, "will_retry": True}
    assert status_after("Processing", "NodeFailed", retry) == "Processing"
    assert status_after("Processing", "NodeFailed", {}) == "Processing"
    assert status_after(None, "NodeSucceeded", {}) is None
