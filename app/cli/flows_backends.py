"""Where ``flowlog flows`` acts: a flowlog server (``--api``, through flowlog.client) or the
database itself (DATABASE_URL, or the embedded server). Both answer with the REST API's models,
so that the commands print the same whichever they use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flowlog.api.children import children_info
from flowlog.api.errors import STATUS_OF
from flowlog.audit.migrate_flows import migrate_flows
from flowlog.cli.problems import CANNOT_LOG_IN, database_problem
from flowlog.client import FlowlogClient
from flowlog.client.errors import Unavailable, error_for
from flowlog.client.events import StreamEvent
from flowlog.engine import Engine
from flowlog.eventstore import TRANSIENT_ERRORS, RecordedEvent, wait_any
from flowlog.projections.reads import Cursor, ListFilter, list_workflows
from flowlog.roles import DatabaseUrls
from flowlog.wire.flows import WorkFlowDetail, WorkFlowInfo, info_of, node_of
from flowlog.wire.history import STREAM_ENDS
from flowlog.wire.migrations import MigrationRequest, MigrationResponse
from flowlog.workflow.caller import Caller
from flowlog.workflow.definition import Registry
from flowlog.workflow.errors import WorkflowError
from flowlog.workflow.projection import workflow_row
from flowlog.workflow.streams import flow_stream


@dataclass(frozen=True, slots=True)
class Selection:
    status: str | None = None
    flow_name: str | None = None
    biz_id: str | None = None
    biz_type: str | None = None
    parent: str | None = None


class Backend(Protocol):
    def flows(self, where: Selection, limit: int) -> AsyncIterator[WorkFlowInfo]: ...
    async def show(self, flow_id: str) -> WorkFlowDetail: ...
    async def act(
        self, action: str, flow_id: str, reason: str, context: Mapping[str, Any]
    ) -> WorkFlowInfo: ...
    def follow(self, flow_id: str) -> AsyncIterator[StreamEvent]: ...
    async def migrate(self, name: str, body: MigrationRequest) -> MigrationResponse: ...
    async def close(self) -> None: ...


class ApiBackend:
    def __init__(self, url: str, token: str | None) -> None:
        self.client = FlowlogClient(url, token=token)

    async def flows(self, where: Selection, limit: int) -> AsyncIterator[WorkFlowInfo]:
        seen = 0
        async for info in self.client.list_flows(
            status=where.status, flow_name=where.flow_name, biz_id=where.biz_id,
            biz_type=where.biz_type, parent_flow_id=where.parent, page_size=min(limit, 100),
        ):  # fmt: skip
            yield info
            seen += 1
            if seen >= limit:
                return

    async def show(self, flow_id: str) -> WorkFlowDetail:
        return await self.client.detail(flow_id)

    async def act(
        self, action: str, flow_id: str, reason: str, context: Mapping[str, Any]
    ) -> WorkFlowInfo:
        if action == "start":
            await self.client.start(flow_id, reason=reason)
        elif action == "stop":
            await self.client.stop(flow_id, reason=reason)
        elif action == "cancel":
            return await self.client.cancel(flow_id, reason=reason)
        else:
            return await self.client.retry(flow_id, context=context, reason=reason)
        return (await self.client.detail(flow_id)).info

    def follow(self, flow_id: str) -> AsyncIterator[StreamEvent]:
        return self.client.follow(flow_id)

    async def migrate(self, name: str, body: MigrationRequest) -> MigrationResponse:
        return await self.client.migrate(name, body)

    async def close(self) -> None:
        await self.client.close()


class DatabaseBackend:
    """The service on the database, without a reactor: the flows' own workers run them."""

    def __init__(self, urls: DatabaseUrls, caller: Caller) -> None:
        self.engine = Engine(urls.url, Registry(), run_reactor=False, owner_url=urls.owner_url,
                             pool_size=2)  # fmt: skip
        self.urls = urls
        self.caller = caller

    async def open(self) -> DatabaseBackend:
        try:
            await self.engine.start()
        except (*TRANSIENT_ERRORS, *CANNOT_LOG_IN) as exc:
            problem = database_problem(exc, self.urls.url)
            raise Unavailable(f"the database could not be reached: {problem}") from None
        return self

    async def flows(self, where: Selection, limit: int) -> AsyncIterator[WorkFlowInfo]:
        after: Cursor | None = None
        left = limit
        selection = ListFilter(status=where.status, name=where.flow_name, biz_id=where.biz_id,
                               biz_type=where.biz_type, parent_id=where.parent)  # fmt: skip
        while left > 0:
            page = await list_workflows(self.engine.pool, selection, page_size=min(left, 100),
                                        after=after)  # fmt: skip
            for row in page.rows:
                yield info_of(row)
            left -= len(page.rows)
            if page.next_cursor is None or not page.rows:
                return
            after = Cursor.decode(page.next_cursor)

    async def show(self, flow_id: str) -> WorkFlowDetail:
        service = self.engine.service
        detail = await _refusals(service.detail_workflow(flow_id))
        children = await children_info(self.engine.pool, service, flow_id, detail.executions)
        return WorkFlowDetail(info=info_of(detail.info), nodes=[node_of(n) for n in detail.nodes],
                              nodeNames=detail.node_names, children=children)  # fmt: skip

    async def act(
        self, action: str, flow_id: str, reason: str, context: Mapping[str, Any]
    ) -> WorkFlowInfo:
        service = self.engine.service
        caller = Caller(actor=self.caller.actor, reason=reason or None)
        if action == "start":
            state = await _refusals(service.start(flow_id, caller))
        elif action == "stop":
            state = await _refusals(service.stop(flow_id, reason, caller))
        elif action == "cancel":
            state = await _refusals(service.cancel(flow_id, reason, caller))
        else:
            state = await _refusals(service.retry(flow_id, dict(context), caller=caller))
        return info_of(workflow_row(state))

    async def follow(self, flow_id: str) -> AsyncIterator[StreamEvent]:
        store = self.engine.service.store
        waiter = self.engine.listener.register()
        last = 0
        try:
            while True:
                waiter.clear()
                stored = await store.read_stream(flow_stream(flow_id), last + 1)
                if not stored and last == 0:
                    await _refusals(self.engine.service.detail_workflow(flow_id))
                for event in stored:
                    last = event.version
                    yield _streamed(event)
                if stored and stored[-1].type in STREAM_ENDS:
                    return  # ended as of now (an ended event further back was retried)
                await wait_any([waiter], 15.0)
        finally:
            self.engine.listener.unregister(waiter)

    async def migrate(self, name: str, body: MigrationRequest) -> MigrationResponse:
        """On the database, every tenant's flows: the versions are this process's (none) or
        the log's (rebuilt from what it recorded of them)."""
        return await _refusals(migrate_flows(self.engine.service, name, body, self.caller, None))  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.engine.stop()


def _streamed(event: RecordedEvent) -> StreamEvent:
    return StreamEvent(version=event.version, type=event.type, time=event.recorded_at,
                       data=event.data, metadata=event.metadata)  # fmt: skip


async def _refusals(call: Any) -> Any:
    """The service's refusals as the client's: the status the API would answer, and the
    exception the client raises for it, so that both backends fail alike."""
    try:
        return await call
    except WorkflowError as exc:
        envelope = {"code": int(exc.code), "message": exc.message, "data": dict(exc.details)}
        raise error_for(STATUS_OF.get(exc.code, 409), envelope) from None
