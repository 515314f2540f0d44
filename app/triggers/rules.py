"""Event rules: what each says (its state, folded from its stream), the checks of its
templates when it is made or changed, and the flow it makes of an event. Pure.

The longest a template renders depends on the event's data, unknown when a rule is made: so a
rule's templates are checked for their paths only, and each event's rendering is held to the
flow create's own limits (``create_refusal``); a rendering that fails is a refusal recorded
with the event, never a flow the REST create would not make.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
from pydantic import JsonValue

from flowlog.eventstore import RecordedEvent
from flowlog.paths import NotRendered, path_problems, render
from flowlog.triggers.cloudevent import ReceivedEvent
from flowlog.triggers.events import RuleCreated, RuleDeleted, RuleSettings, RuleUpdated, decode
from flowlog.wire.flows import create_refusal

ROOTS: Final = {
    "data": "the event's data",
    "id": "the event's id",
    "source": "the event's source",
    "type": "the event's type",
    "subject": "the event's subject",
    "time": "the event's time, RFC 3339",
}
BIZ_TYPE: Final = "cloudevent"
"""The bizType of the flows rules start."""
MAX_RULES_PER_TYPE: Final = 50
"""Active rules a tenant may have for one event type: one event starts at most this many
flows, all in its own transaction."""


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    tenant_id: str
    settings: RuleSettings
    deleted: bool
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    version: int


def fold(events: Sequence[RecordedEvent]) -> Rule | None:
    """A rule's state from its stream (None: no RuleCreated first)."""
    rule: Rule | None = None
    for recorded in events:
        event = decode(recorded.type, dict(recorded.data))
        actor = str(recorded.metadata.get("actor", "system"))
        if isinstance(event, RuleCreated):
            rule = Rule(event.rule_id, event.tenant_id, event.settings, False,
                        recorded.recorded_at, actor, recorded.recorded_at, actor,
                        recorded.version)  # fmt: skip
        elif rule is not None and isinstance(event, RuleUpdated | RuleDeleted):
            settings = event.settings if isinstance(event, RuleUpdated) else rule.settings
            rule = Rule(rule.rule_id, rule.tenant_id, settings, isinstance(event, RuleDeleted),
                        rule.created_at, rule.created_by, recorded.recorded_at, actor,
                        recorded.version)  # fmt: skip
    return rule


def template_problems(settings: RuleSettings) -> list[str]:
    """What is wrong with a rule's templates (their paths; lengths are checked per event)."""
    problems = [f"bizId: {p}" for p in path_problems(settings.bizId, ROOTS)]
    problems += [f"context: {p}" for p in path_problems(settings.context, ROOTS)]
    return problems


class RenderRefused(ValueError):
    """The rule makes no flow of this event (the message says why, for the record)."""


def flow_of(settings: RuleSettings, event: ReceivedEvent) -> tuple[str, dict[str, Any]]:
    """The bizId and context of the flow the rule starts for ``event``; RenderRefused when a
    template names what the event lacks, or the REST create would refuse that flow."""
    values = event.values()
    try:
        biz_id = _text(render(settings.bizId, values))
        context = render(dict(settings.context), values)
    except NotRendered as missing:
        raise RenderRefused(str(missing)[:300]) from None
    assert isinstance(context, dict)
    refusal = create_refusal({"flowName": settings.flowName, "bizId": biz_id,
                              "bizType": BIZ_TYPE, "context": context, "start": True})  # fmt: skip
    if refusal is not None:
        raise RenderRefused(f"the REST create would refuse its flow: {refusal[:300]}")
    return biz_id, context


def _text(value: JsonValue) -> str:
    """A bizId is text: a placeholder that renders a number gives its JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def row_args(rule: Rule) -> tuple[Any, ...]:
    """The columns of the rule's row that its stream decides (see ``rule_rows``)."""
    s = rule.settings
    return (
        rule.rule_id, rule.tenant_id, s.type, s.source, s.flowName, s.bizId, s.context,
        s.description, "deleted" if rule.deleted else "active", rule.created_at, rule.created_by,
        rule.updated_at, rule.updated_by, rule.version,
    )  # fmt: skip


def same_request(settings: RuleSettings, other: Mapping[str, Any]) -> bool:
    return settings.model_dump() == dict(other)
