"""A flow id is exactly what flowlog makes: the service's random ids and the ids schedule fires
derive pass the check the edges use; text no flow could have does not."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from flowlog.engine import Engine
from flowlog.flow_ids import FLOW_ID_PATTERN, is_flow_id
from flowlog.schedules import decide
from flowlog.schedules.state import evolve
from flowlog.wire.schedules import ScheduleSpec
from flowlog.workflow.definition import Registry
from tests.workflow.defs import backup_flow


async def test_the_ids_the_service_and_schedule_fires_make_are_flow_ids(database_url: str) -> None:
    async with Engine(database_url, Registry([backup_flow()]), run_reactor=False) as engine:
        created = [(await engine.service.create("b", "t", "backup")).flow_id for _ in range(20)]
    assert all(is_flow_id(flow_id) for flow_id in created), created
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    for schedule_id in ("nightly", "a.b:c-d_e", "x" * 100):
        spec = ScheduleSpec.model_validate({"flowName": "backup", "intervalSeconds": 60})
        state = evolve(
            None, decide.create(None, schedule_id, "t1", spec, False, start)[0], 1, start
        )
        for minutes in range(0, 600, 7):
            fired = decide.flow_id_for(state, start + timedelta(minutes=minutes, microseconds=3))
            assert is_flow_id(fired), fired


def test_text_no_flow_could_have_is_not_a_flow_id() -> None:
    made = str(uuid.uuid4())
    for text in ("", "ghost", made.upper(), made.replace("-", ""), made + "\n", f" {made}",
                 f"{made}.2", str(uuid.uuid1()), str(uuid.uuid3(uuid.NAMESPACE_DNS, "x")),
                 "00000000-0000-0000-0000-000000000000", made[:-1] + "\u0660"):  # fmt: skip
        assert not is_flow_id(text), text
    # The OpenAPI document's pattern says the same as the check.
    schema = re.compile(FLOW_ID_PATTERN)
    assert schema.search(made)
    assert not schema.search("ghost")
