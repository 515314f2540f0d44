"""Event rules in the log: each a stream (``rule-<id>``) whose row in ``event_rules`` is
written by the append's own statement; made, changed and deleted for a tenant, which sees only
its own (another tenant's rule does not exist for it)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from flowlog.eventstore import AppendAlso, EventStore, Expect, NewEvent, WrongExpectedVersion
from flowlog.sql import load_queries
from flowlog.triggers.events import (
    RuleCreated,
    RuleDeleted,
    RuleSettings,
    RuleUpdated,
    TriggerEvent,
    derived_rule_id,
    encode,
    rule_stream,
)
from flowlog.triggers.rules import MAX_RULES_PER_TYPE, Rule, fold, template_problems
from flowlog.workflow.caller import Caller
from flowlog.workflow.definition import Registry
from flowlog.workflow.errors import Code, DefinitionNotFound, WorkflowError

log = logging.getLogger(__name__)

_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class TriggerQueries:
    rule_written: str
    rule: str
    rules: str
    active_of_type: str
    matching: str
    received: str
    events: str
    restore_rule: str
    restore_received: str
    rule_rows: str
    received_rows: str
    definition_known: str


Q = load_queries(TriggerQueries, "triggers")


class RuleNotFound(WorkflowError):
    def __init__(self, rule_id: str) -> None:
        super().__init__(Code.RULE_NOT_FOUND, f"no event rule {rule_id[:64]!r} here")


def _event(event: TriggerEvent, caller: Caller) -> NewEvent:
    return NewEvent(event.type, encode(event), caller.metadata())  # type: ignore[attr-defined]


def _written(rule_id: str, tenant: str, settings: RuleSettings, state: str, actor: str
             ) -> AppendAlso:  # fmt: skip
    s = settings
    return AppendAlso.of(
        (
            Q.rule_written,
            (
                rule_id,
                tenant,
                s.type,
                s.source,
                s.flowName,
                s.bizId,
                s.context,
                s.description,
                state,
                actor,
            ),
        )
    )


class RuleStore:
    def __init__(self, store: EventStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    @property
    def pool(self) -> asyncpg.Pool:
        return self.store.pool

    async def create(self, settings: RuleSettings, *, tenant: str, visible_to: str | None,
                     caller: Caller) -> Rule:  # fmt: skip
        """A new rule of ``tenant`` (its flowName one that ``visible_to`` may start). With the
        caller's Idempotency-Key, its id is derived from the key: the same request again
        answers the rule it made; another request under that key is refused (422)."""
        await self._check(settings, tenant, visible_to)
        key = caller.idempotency
        rule_id = (derived_rule_id(tenant, caller.actor, key.key) if key is not None
                   else str(uuid.uuid4()))  # fmt: skip
        event = RuleCreated(rule_id=rule_id, tenant_id=tenant, settings=settings)
        with contextlib.suppress(WrongExpectedVersion):  # made before, by the same key
            await self.store.append(
                rule_stream(rule_id), [_event(event, caller)], Expect.NO_STREAM,
                also=_written(rule_id, tenant, settings, "active", caller.actor),
            )  # fmt: skip
        rule = await self.load(rule_id)
        if (
            rule is None
            or rule.tenant_id != tenant
            or rule.version != 1
            or (rule.settings != settings)
        ):
            raise WorkflowError(
                Code.IDEMPOTENCY_REUSED,
                "this Idempotency-Key made another rule (or it has changed since); send a new "
                "key for a new request",
            )
        log.info("event rule created", extra={"rule_id": rule_id, "tenant_id": tenant,
                                              "event_type": settings.type})  # fmt: skip
        return rule

    async def update(self, rule_id: str, changes: dict[str, object], *, tenant: str | None,
                     caller: Caller) -> Rule:  # fmt: skip
        """Changes the given settings of the rule (of ``tenant``; None: any)."""
        for _ in range(_ATTEMPTS):
            rule = await self.get(rule_id, tenant)
            settings = RuleSettings.model_validate({**rule.settings.model_dump(), **changes})
            if settings == rule.settings:
                return rule
            await self._check(settings, rule.tenant_id, tenant, exclude=rule)
            try:
                await self.store.append(
                    rule_stream(rule_id), [_event(RuleUpdated(settings=settings), caller)],
                    rule.version, also=_written(rule_id, rule.tenant_id, settings, "active",
                                                caller.actor),
                )  # fmt: skip
            except WrongExpectedVersion:
                continue
            log.info("event rule updated", extra={"rule_id": rule_id})
            return await self.get(rule_id, tenant)
        raise WorkflowError(Code.BUSY, f"event rule {rule_id} kept changing: try again")

    async def delete(self, rule_id: str, *, tenant: str | None, caller: Caller) -> Rule:
        for _ in range(_ATTEMPTS):
            rule = await self.get(rule_id, tenant)
            try:
                await self.store.append(
                    rule_stream(rule_id), [_event(RuleDeleted(), caller)], rule.version,
                    also=_written(rule_id, rule.tenant_id, rule.settings, "deleted",
                                  caller.actor),
                )  # fmt: skip
            except WrongExpectedVersion:
                continue
            log.info("event rule deleted", extra={"rule_id": rule_id})
            deleted = await self.load(rule_id)
            assert deleted is not None
            return deleted
        raise WorkflowError(Code.BUSY, f"event rule {rule_id} kept changing: try again")

    async def load(self, rule_id: str) -> Rule | None:
        """The rule folded from its stream (deleted ones too), whoever's it is."""
        return fold(await self.store.read_stream(rule_stream(rule_id)))

    async def get(self, rule_id: str, tenant: str | None) -> Rule:
        """The live rule, if ``tenant`` (None: any) may see it."""
        if len(rule_id) > 64:
            raise RuleNotFound(rule_id)
        rule = await self.load(rule_id)
        if rule is None or rule.deleted or (tenant is not None and rule.tenant_id != tenant):
            raise RuleNotFound(rule_id)
        return rule

    async def listed(self, tenant: str | None, after: tuple[datetime, str] | None, limit: int,
                     event_type: str | None) -> list[asyncpg.Record]:  # fmt: skip
        at, rule_id = after if after is not None else (None, None)
        return list(await self.pool.fetch(Q.rules, tenant, at, rule_id, limit, event_type))

    async def _check(self, settings: RuleSettings, tenant: str, visible_to: str | None, *,
                     exclude: Rule | None = None) -> None:  # fmt: skip
        problems = template_problems(settings)
        if problems:
            raise WorkflowError(Code.BAD_INPUT, "; ".join(problems))
        await self._known(settings.flowName, visible_to)
        if exclude is None or exclude.settings.type != settings.type:
            count = await self.pool.fetchval(Q.active_of_type, tenant, settings.type)
            if count >= MAX_RULES_PER_TYPE:
                raise WorkflowError(
                    Code.BAD_INPUT,
                    f"type: the tenant has {MAX_RULES_PER_TYPE} rules for this event type "
                    "already (one event starts at most that many flows)",
                )

    async def _known(self, name: str, tenant: str | None) -> None:
        """Refuses a definition no process recorded, or one ``tenant`` may not start (another
        tenant's is not found, as for a flow's create)."""
        with contextlib.suppress(DefinitionNotFound):
            self.registry.get(name, tenant)
            return
        if not await self.pool.fetchval(Q.definition_known, name, tenant):
            raise DefinitionNotFound(name)
