"""The console's Activity page: what actors did, newest first, read from the log (every event
records its actor in its metadata: ``token:<name>``, ``key:<name>``, ``oidc:<subject>``,
``reactor:<process>``, ``schedule:<id>``, a CLI user's ``user@host``, ``archiver``, ``demo``,
``system``, ``anonymous``..., whatever the log holds).

An event's tenant is its stream's (``event_tenant()``, migration 0016): a tenant's viewer is
shown only events whose tenant is its own, and may not ask for another's. Pages are keyset
pages by position; each walks at most ``EXAMINED`` events of an index (the actor's, or the
log's), so a filter that matches little costs a bounded walk and the page says how far back
it looked. Statements in sql/queries/activity.sql.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args
from urllib.parse import quote, urlencode

from aiohttp import web
from pydantic import Field

from flowlog.api.common import tenant_of
from flowlog.api.replicas import read_pool
from flowlog.archive.events import ARCHIVE_STREAM, PLANNED, REMOVED, RESTORED, WRITTEN
from flowlog.console.pages import fragment, json_answer, page, render
from flowlog.eventstore.pool import Executor
from flowlog.schedules.events import STREAM as SCHEDULE_STREAM
from flowlog.schedules.events import AnyScheduleEvent
from flowlog.sql import load_queries
from flowlog.wire.base import IsoDatetime, Request
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.events import EVENT_TYPES
from flowlog.workflow.streams import DEFINITION_REGISTERED, DEFINITION_STREAM, FLOW_STREAM

PAGE_SIZES = (25, 50, 100)
DEFAULT_PAGE_SIZE = 50
EXAMINED = 2000
"""Events a page looks at, at most: past them, it offers to look further back."""
ACTORS_LISTED = 200
"""Actors offered in the filter's list (viewers of every tenant only)."""


@dataclass(frozen=True, slots=True)
class ActivityQueries:
    activity: str
    activity_of_actor: str
    actors: str


Q = load_queries(ActivityQueries, "activity")


class ActivityQuery(Request):
    """The page's filters, from its URL (empty fields of the form mean "any")."""

    actor: str | None = Field(None, min_length=1, max_length=300)
    tenant: str | None = Field(None, min_length=1, max_length=200)
    type: str | None = Field(None, min_length=1, max_length=100)
    since: IsoDatetime | None = Field(None, alias="from")
    until: IsoDatetime | None = Field(None, alias="to")
    before: int | None = Field(None, ge=1, le=2**63 - 1)
    """The keyset cursor: events before this position (the last one the page above showed)."""
    pageSize: int = DEFAULT_PAGE_SIZE


@dataclass(frozen=True, slots=True)
class Target:
    """What an event acted on: its stream, named for a person, with its page if it has one."""

    kind: str
    name: str
    url: str | None


@dataclass(frozen=True, slots=True)
class Action:
    position: int
    recorded_at: datetime
    stream_id: str
    type: str
    actor: str | None
    reason: str | None
    tenant_id: str | None
    """None: no tenant's (code definitions, archive runs, streams of kinds unknown here)."""

    @property
    def target(self) -> Target:
        return target_of(self.stream_id)


@dataclass(frozen=True, slots=True)
class ActivityPage:
    actions: list[Action]
    older: int | None
    """The cursor of the next page (None: nothing older)."""
    searched_to: Action | None
    """Set when the page stopped at its walk's end, not at a full page: the oldest event it
    looked at (the next page looks from there)."""


_TARGETS = (
    (FLOW_STREAM, "flow", "/flows/"),
    (SCHEDULE_STREAM, "schedule", "/schedules/"),
    (DEFINITION_STREAM, "definition", "/definitions/"),
    (ARCHIVE_STREAM, "archive", None),
)


def target_of(stream_id: str) -> Target:
    for prefix, kind, path in _TARGETS:
        if stream_id.startswith(prefix):
            name = stream_id.removeprefix(prefix)
            return Target(kind, name, None if path is None else path + quote(name, safe=""))
    kind, sep, name = stream_id.partition("-")
    return Target(kind, name, None) if sep and name else Target("stream", stream_id, None)


async def activity(
    executor: Executor, query: ActivityQuery, tenant: str | None, examined: int = EXAMINED
) -> ActivityPage:
    """One page of the events ``query`` asks for, of ``tenant`` (None: every tenant's)."""
    statement = Q.activity if query.actor is None else Q.activity_of_actor
    rows = await executor.fetch(
        statement, query.actor, tenant, query.type, query.since, query.until, query.before,
        query.pageSize, examined,
    )  # fmt: skip
    actions = [_action(row) for row in rows if row["matches"]]
    if len(actions) == query.pageSize:
        return ActivityPage(actions, actions[-1].position, None)
    last = rows[-1] if rows else None
    if last is not None and last["examined"] == examined:
        return ActivityPage(actions, last["position"], _action(last))
    return ActivityPage(actions, None, None)


def _action(row: Any) -> Action:
    return Action(
        position=row["position"], recorded_at=row["recorded_at"], stream_id=row["stream_id"],
        type=row["type"], actor=row["actor"], reason=row["reason"], tenant_id=row["tenant_id"],
    )  # fmt: skip


async def known_actors(executor: Executor, most: int = ACTORS_LISTED) -> list[str]:
    """The log's actors, in order (for a viewer of every tenant)."""
    return [row["actor"] for row in await executor.fetch(Q.actors, most)]


KNOWN_TYPES = sorted(
    {*EVENT_TYPES, DEFINITION_REGISTERED, PLANNED, WRITTEN, REMOVED, RESTORED,
     *(model.model_fields["type"].default for model in get_args(get_args(AnyScheduleEvent)[0]))}
)  # fmt: skip
"""Offered in the type field's list; any other type (one this version does not know) may be
typed in."""


def _query(request: web.Request) -> tuple[ActivityQuery, str | None]:
    """The filters, and the tenant whose events the page may show (None: every tenant's)."""
    given = {k: v for k, v in request.query.items() if v.strip()}
    query = ActivityQuery.model_validate(given)
    if query.pageSize not in PAGE_SIZES:
        raise WorkflowError(
            Code.BAD_INPUT, f"pageSize must be one of {', '.join(map(str, PAGE_SIZES))}"
        )
    own = tenant_of(request)
    if own is None:
        return query, query.tenant
    if query.tenant is not None and query.tenant != own:
        raise WorkflowError(Code.BAD_INPUT, f"this session sees only tenant {own}'s activity")
    return query, own


def _url(params: Mapping[str, str | None]) -> str:
    kept = {k: v for k, v in params.items() if v}
    return "/activity" + ("?" + urlencode(kept) if kept else "")


async def _values(request: web.Request) -> dict[str, Any]:
    query, tenant = _query(request)
    pool = await read_pool(request)
    found = await activity(pool, query, tenant)
    every_tenant = tenant_of(request) is None
    filters = {k: v for k, v in request.query.items() if v.strip() and k != "before"}
    actors = await known_actors(pool) if every_tenant else []
    shown = sorted({a.actor for a in found.actions if a.actor} | set(actors))
    return {
        "query": query,
        "page": found,
        "every_tenant": every_tenant,
        "tenant": tenant,
        "actors": shown,
        "types": KNOWN_TYPES,
        "page_sizes": PAGE_SIZES,
        "examined": EXAMINED,
        "first_page": query.before is None,
        "older_url": None if found.older is None else _url({**filters, "before": str(found.older)}),
        "first_url": _url(filters),
        "actor_url": lambda actor: _url({**filters, "actor": actor}),
    }


@page
async def activity_page(request: web.Request) -> web.StreamResponse:
    return render(request, "activity.html.j2", {**await _values(request), "nav": "activity"})


@page
async def activity_fragment(request: web.Request) -> web.StreamResponse:
    """The page's rows and pager (its "Older" link fetches them in place)."""
    values = await _values(request)
    return json_answer(
        {
            "rows": fragment(request, "_activity_rows.html.j2", values),
            "older": values["older_url"],
        }
    )
