"""CloudEvents in (docs/events.md): ``POST /api/v1/events`` (a CloudEvent, structured or
binary mode) and its list, and the event rules (``/api/v1/event-rules``) that start flows of
the events. A tenant sees and matches only its own; a superadmin's (or an open server's)
events and rules are those of the tenant ""."""

from __future__ import annotations

import base64
import binascii
import dataclasses
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.api.common import caller_of, tenant_of
from flowlog.api.context import context_of
from flowlog.api.errors import json_response
from flowlog.api.json_keys import refuse_duplicate_keys
from flowlog.api.operations import Api, Paged
from flowlog.triggers.cloudevent import parse_http
from flowlog.triggers.events import RuleSettings
from flowlog.triggers.ingest import Answer, Ingestion
from flowlog.triggers.rules import Rule
from flowlog.triggers.store import Q, RuleStore
from flowlog.wire.envelope import Page
from flowlog.wire.triggers import (
    EventAnswer,
    EventList,
    EventListQuery,
    ReceivedEventInfo,
    RuleCreate,
    RuleInfo,
    RuleList,
    RuleListQuery,
    RuleRefusal,
    RuleUpdate,
)
from flowlog.workflow.errors import Code, WorkflowError

api = Api()
RULES_PATH = "/api/v1/event-rules"
EVENTS_PATH = "/api/v1/events"
TRIGGERS = ("events",)

_COUNTERS: WeakKeyDictionary[CollectorRegistry, Counter] = WeakKeyDictionary()


def received_counter(registry: CollectorRegistry) -> Counter:
    """``flowlog_cloudevents_total{outcome}`` of the application's registry."""
    if registry not in _COUNTERS:
        _COUNTERS[registry] = Counter(
            "flowlog_cloudevents", "CloudEvents received, by outcome (matched: flows started; "
            "unmatched: no rule; duplicate: answered again; refused: a rule started none).",
            ["outcome"], registry=registry,
        )  # fmt: skip
    return _COUNTERS[registry]


def _rules(request: web.Request) -> RuleStore:
    engine = request.app[keys.ENGINE]
    return RuleStore(engine.service.store, engine.service.registry)


def _own_tenant(request: web.Request) -> str:
    """The tenant a caller's events and rules are of: its own; "" for every-tenant callers."""
    return tenant_of(request) or ""


def _info(rule: Rule) -> RuleInfo:
    s = rule.settings
    return RuleInfo(
        id=rule.rule_id, tenantId=rule.tenant_id, type=s.type, source=s.source,
        flowName=s.flowName, bizId=s.bizId, context=s.context, description=s.description,
        createdAt=rule.created_at, createdBy=rule.created_by, updatedAt=rule.updated_at,
        updatedBy=rule.updated_by, version=rule.version,
    )  # fmt: skip


def _row_info(row: asyncpg.Record) -> RuleInfo:
    return RuleInfo(
        id=row["id"], tenantId=row["tenant_id"], type=row["type"], source=row["source"],
        flowName=row["flow_name"], bizId=row["biz_id"], context=dict(row["context"]),
        description=row["description"], createdAt=row["created_at"],
        createdBy=row["created_by"], updatedAt=row["updated_at"], updatedBy=row["updated_by"],
        version=row["stream_version"],
    )  # fmt: skip


@api.route(
    "POST", RULES_PATH, summary="Make an event rule: events of a type (and source) start a "
    "flow of a definition, its bizId and context rendered from the event", body=RuleCreate,
    response=RuleInfo, errors=(400, 404, 413), tags=TRIGGERS, role=Role.ADMIN,
)  # fmt: skip
async def create_rule(request: web.Request, body: RuleCreate) -> RuleInfo:
    settings = RuleSettings.model_validate(body.model_dump())
    rule = await _rules(request).create(
        settings, tenant=_own_tenant(request), visible_to=tenant_of(request),
        caller=caller_of(context_of(request)),
    )  # fmt: skip
    return _info(rule)


@api.route(
    "GET", RULES_PATH, summary="List event rules (newest first)", query=RuleListQuery,
    response=RuleList, paged=True, tags=TRIGGERS, role=Role.VIEWER,
)  # fmt: skip
async def list_rules(request: web.Request, query: RuleListQuery) -> Paged:
    after = _rule_cursor(query.cursor) if query.cursor else None
    rows = await _rules(request).listed(tenant_of(request), after, query.pageSize + 1, query.type)
    page = rows[: query.pageSize]
    more = len(rows) > query.pageSize
    cursor = _next_rule(page[-1]) if more else None
    data = RuleList(rules=[_row_info(row) for row in page], nextCursor=cursor)
    return Paged(data, Page(page=1, pageSize=query.pageSize, total=len(page)))


@api.route(
    "GET", RULES_PATH + "/{ruleId}", summary="An event rule", response=RuleInfo,
    errors=(400, 404), tags=TRIGGERS, role=Role.VIEWER,
)  # fmt: skip
async def get_rule(request: web.Request, ruleId: str) -> RuleInfo:
    return _info(await _rules(request).get(ruleId, tenant_of(request)))


@api.route(
    "PATCH", RULES_PATH + "/{ruleId}", summary="Change an event rule's settings (those given)",
    body=RuleUpdate, response=RuleInfo, errors=(400, 404, 413), tags=TRIGGERS,
    role=Role.ADMIN,
)  # fmt: skip
async def update_rule(request: web.Request, ruleId: str, body: RuleUpdate) -> RuleInfo:
    changes = body.model_dump(include=body.model_fields_set)
    for name in ("type", "flowName", "bizId", "context", "description"):
        if name in changes and changes[name] is None:
            raise WorkflowError(Code.BAD_INPUT, f"{name}: may not be null")
    rule = await _rules(request).update(
        ruleId, changes, tenant=tenant_of(request), caller=caller_of(context_of(request))
    )
    return _info(rule)


@api.route(
    "DELETE", RULES_PATH + "/{ruleId}", summary="Delete an event rule (its history stays in the "
    "log)", response=RuleInfo, errors=(400, 404), tags=TRIGGERS, role=Role.ADMIN,
)  # fmt: skip
async def delete_rule(request: web.Request, ruleId: str) -> RuleInfo:
    rule = await _rules(request).delete(
        ruleId, tenant=tenant_of(request), caller=caller_of(context_of(request))
    )
    return _info(rule)


@api.route(
    "POST", EVENTS_PATH, summary="Send a CloudEvent (structured mode: Content-Type "
    "application/cloudevents+json; binary mode: ce-* headers and JSON data): recorded, and "
    "the flows of the rules it matches started with it; answered 202, and the same answer "
    "again for the same source and id within 24 h", response=None, raw=True,
    errors=(400, 413, 415), tags=TRIGGERS, role=Role.OPERATOR,
)  # fmt: skip
async def receive_event(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    refuse_duplicate_keys(body)
    event = parse_http(_own_tenant(request), list(request.headers.items()), body)
    engine = request.app[keys.ENGINE]
    ctx = context_of(request)
    # The event's source and id are its idempotency key: a header key adds nothing.
    caller = dataclasses.replace(caller_of(ctx), idempotency=None)
    answer = await Ingestion(engine.service).receive(event, caller)
    received_counter(request.app[keys.METRICS].registry).labels(answer.outcome).inc()
    return json_response({"code": 0, "message": "OK", "data": _answer(answer)}, status=202)


def _answer(answer: Answer) -> dict[str, Any]:
    return EventAnswer(
        id=answer.id, source=answer.source, matched=answer.matched, flows=answer.flows,
        refused=[RuleRefusal(rule=r.rule, reason=r.reason) for r in answer.refused],
        duplicate=answer.duplicate, completed=answer.completed,
    ).model_dump(mode="json")  # fmt: skip


@api.route(
    "GET", EVENTS_PATH, summary="List received CloudEvents (newest first), matched or not",
    query=EventListQuery, response=EventList, paged=True, tags=TRIGGERS, role=Role.VIEWER,
)  # fmt: skip
async def list_events(request: web.Request, query: EventListQuery) -> Paged:
    before = _position(query.after) if query.after else None
    pool = request.app[keys.ENGINE].pool
    rows = await pool.fetch(
        Q.events, tenant_of(request), before, query.pageSize + 1, query.matched, query.type
    )
    page = rows[: query.pageSize]
    more = len(rows) > query.pageSize
    events = [_event_info(row) for row in page]
    cursor = str(page[-1]["position"]) if more else None
    return Paged(EventList(events=events, nextCursor=cursor),
                 Page(page=1, pageSize=query.pageSize, total=len(page)))  # fmt: skip


def _event_info(row: asyncpg.Record) -> ReceivedEventInfo:
    return ReceivedEventInfo(
        id=row["event_id"], source=row["source"], type=row["type"], subject=row["subject"],
        time=row["time"], receivedAt=row["received_at"], position=row["position"],
        matched=row["matched"], rules=list(row["rules"]), flows=list(row["flows"]),
        refused=row["refused"],
    )  # fmt: skip


def _position(cursor: str) -> int:
    if not cursor.isdigit() or len(cursor) > 19 or int(cursor) >= 2**63:
        raise WorkflowError(Code.BAD_INPUT, "after: not a cursor this list gave")
    return int(cursor)


def _next_rule(row: asyncpg.Record) -> str:
    text = f"{row['created_at'].isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def _rule_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, _, rule_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        moment = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeError):
        raise WorkflowError(Code.BAD_INPUT, "cursor: not a cursor this list gave") from None
    if moment.tzinfo is None or not rule_id:
        raise WorkflowError(Code.BAD_INPUT, "cursor: not a cursor this list gave")
    return moment, rule_id
