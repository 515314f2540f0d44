"""An async client of flowlog's REST API, typed with the server's own pydantic models.

Requests are validated by the same request models the server validates with, and answers are
read into the same answer models it writes them from, so the two cannot drift. Transient
failures are retried with backoff, writes with one ``Idempotency-Key`` for every attempt
(app/client/transport.py); the task API's methods and the worker are in app/client/tasks.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from flowlog.client.errors import FlowEnded, Unavailable, error_for
from flowlog.client.events import StreamEvent, changes_status
from flowlog.client.sse import messages
from flowlog.client.tasks import TaskMethods
from flowlog.client.transport import FLOWS, envelope_of, quoted
from flowlog.wire.bulk import BulkRequest, BulkResponse
from flowlog.wire.definitions import (
    DefinitionDetail,
    DefinitionList,
    DefinitionSpec,
    RegisteredResponse,
)
from flowlog.wire.flows import (
    CallbackRequest,
    CancelRequest,
    ContextRequest,
    CreatedResponse,
    CreateRequest,
    FlowFilter,
    InfoResponse,
    ListQuery,
    RetryRequest,
    StopRequest,
    WorkFlowDetail,
    WorkFlowIdRequest,
    WorkFlowInfo,
    WorkFlowList,
)
from flowlog.wire.history import (
    STREAM_ENDS,
    DiffQuery,
    DiffResponse,
    HistoryEvent,
    HistoryQuery,
    HistoryResponse,
    StateQuery,
    StateResponse,
)
from flowlog.wire.migrations import MigrationRequest, MigrationResponse
from flowlog.wire.schedules import (
    ScheduleChange,
    ScheduleCreate,
    ScheduleDetail,
    ScheduleInfo,
    ScheduleList,
    ScheduleListQuery,
    ScheduleUpdate,
)

DEFINITIONS = "/api/v1/workflow-definitions"
SCHEDULES = "/api/v1/workflow-schedules"
TERMINAL = frozenset({"Finished", "Error", "Canceled"})


class FlowlogClient(TaskMethods):
    """``async with FlowlogClient("http://flowlog:8080", token=...) as flowlog: ...``"""

    async def __aenter__(self) -> FlowlogClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- flows -------------------------------------------------------------------------------

    async def create(
        self,
        flow_name: str,
        biz_id: str,
        biz_type: str,
        *,
        context: Mapping[str, Any] | None = None,
        start: bool = False,
        idempotency_key: str | None = None,
        priority: int = 0,
    ) -> CreatedResponse:
        body = CreateRequest(flowName=flow_name, bizId=biz_id, bizType=biz_type,
                             context=dict(context or {}), start=start,
                             priority=priority)  # fmt: skip
        return await self._send("POST", FLOWS, CreatedResponse, body=body, key=idempotency_key)

    async def start(self, flow_id: str, *, reason: str = "") -> None:
        body = WorkFlowIdRequest(workFlowId=flow_id, reason=reason)
        await self._call("POST", FLOWS + "start", body=body)

    async def stop(self, flow_id: str, *, reason: str = "") -> None:
        body = StopRequest(workFlowId=flow_id, reason=reason)
        await self._call("POST", FLOWS + "stop", body=body)

    async def cancel(self, flow_id: str, *, reason: str = "") -> WorkFlowInfo:
        body = CancelRequest(workFlowId=flow_id, reason=reason)
        return (await self._send("POST", FLOWS + "cancel", InfoResponse, body=body)).info

    async def retry(
        self, flow_id: str, *, context: Mapping[str, Any] | None = None, reason: str = ""
    ) -> WorkFlowInfo:
        """Runs the failed node again, after setting ``context``'s keys."""
        body = RetryRequest(workFlowId=flow_id, context=dict(context or {}), reason=reason)
        return (await self._send("POST", FLOWS + "retry", InfoResponse, body=body)).info

    async def set_context(
        self, flow_id: str, key: str, value: Any, *, reason: str = ""
    ) -> WorkFlowInfo:
        body = ContextRequest(workFlowId=flow_id, key=key, value=value, reason=reason)
        return (await self._send("POST", FLOWS + "context", InfoResponse, body=body)).info

    async def detail(self, flow_id: str) -> WorkFlowDetail:
        return await self._send("GET", FLOWS + quoted(flow_id), WorkFlowDetail)

    async def list_flows(
        self,
        *,
        status: str | None = None,
        flow_name: str | None = None,
        biz_id: str | None = None,
        biz_type: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        parent_flow_id: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[WorkFlowInfo]:
        """Every flow the filters select, newest first, page after page (keyset paging: a
        flow created meanwhile neither repeats nor shifts what follows); with
        ``parent_flow_id``, that flow's children."""
        cursor: str | None = None
        while True:
            query = ListQuery.model_validate({
                "status": status, "flowName": flow_name, "bizId": biz_id, "bizType": biz_type,
                "createdFrom": created_from, "createdTo": created_to, "pageSize": page_size,
                "cursor": cursor, "parentFlowId": parent_flow_id,
            })  # fmt: skip
            listed, _ = await self._send_paged("GET", FLOWS, WorkFlowList, query=query)
            for info in listed.workFlows:
                yield info
            if listed.nextCursor is None or not listed.workFlows:
                return
            cursor = listed.nextCursor

    async def history(self, flow_id: str) -> list[HistoryEvent]:
        """The flow's events, oldest first (all of its pages)."""
        events: list[HistoryEvent] = []
        page = 1
        while True:
            query = HistoryQuery(page=page, pageSize=500)
            path = FLOWS + quoted(flow_id) + "/events"
            answer, paging = await self._send_paged("GET", path, HistoryResponse, query=query)
            events += answer.events
            if not answer.events or len(events) >= paging.total:
                return events
            page += 1

    async def state(
        self, flow_id: str, *, version: int | None = None, at: datetime | None = None
    ) -> StateResponse:
        """The flow's state at a version or a time, folded from its history (default: now)."""
        query = StateQuery(version=version, at=at)
        return await self._send("GET", FLOWS + quoted(flow_id) + "/state", StateResponse,
                                query=query)  # fmt: skip

    async def diff(self, flow_id: str, since: int | str, until: int | str) -> DiffResponse:
        """What changed between two points (versions, or ISO 8601 times)."""
        query = DiffQuery(since=str(since), until=str(until))
        return await self._send("GET", FLOWS + quoted(flow_id) + "/diff", DiffResponse,
                                query=query)  # fmt: skip

    async def complete_callback(
        self,
        *,
        token: str | None = None,
        flow_id: str | None = None,
        node_id: str | None = None,
        success: bool = True,
        result: str = "",
        message: str = "",
        context: Mapping[str, Any] | None = None,
        reason: str = "",
    ) -> WorkFlowInfo:
        """Completes a callback node, by its token or by flow and node id."""
        body = CallbackRequest(
            token=token, workFlowId=flow_id, nodeId=node_id,
            status="success" if success else "fail", result=result, message=message,
            context=dict(context or {}), reason=reason,
        )  # fmt: skip
        return (await self._send("POST", FLOWS + "callback", InfoResponse, body=body)).info

    async def bulk(
        self,
        action: str,
        *,
        flow_ids: Collection[str] | None = None,
        where: FlowFilter | None = None,
        limit: int = 100,
        reason: str = "",
    ) -> BulkResponse:
        """Start, stop, cancel or retry the named flows, or a page of those ``where`` selects."""
        body = BulkRequest.model_validate({
            "action": action, "workFlowIds": None if flow_ids is None else list(flow_ids),
            "filter": where, "limit": limit, "reason": reason,
        })  # fmt: skip
        return await self._send("POST", FLOWS + "bulk", BulkResponse, body=body)

    # -- following a flow --------------------------------------------------------------------

    async def follow(self, flow_id: str, *, after: int = 0) -> AsyncIterator[StreamEvent]:
        """The flow's events as they happen (its history first, from version ``after`` + 1),
        until it ends; a dropped connection is resumed where it stopped (Last-Event-ID)."""
        last = after
        last_type = ""
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(last)} if last else {}
            try:
                async with self._stream(flow_id, headers) as response:
                    if response.status == 204:
                        return  # the flow had ended, and every event was seen
                    if response.status != 200:
                        raise error_for(response.status, envelope_of(await response.text()))
                    failures = 0
                    async for message in messages(response.content):
                        event = StreamEvent.model_validate(orjson.loads(message.data))
                        last, last_type = event.version, event.type
                        yield event
                # The server closes the stream after the event that ends the flow (the last
                # one, not an Error that a retry went on from); any other close was a cut.
                if last_type in STREAM_ENDS:
                    return
                raise aiohttp.ClientPayloadError("the event stream closed early")
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError):
                failures += 1
                if failures > self._retries:
                    raise Unavailable(f"the event stream of {flow_id} kept failing") from None
                await asyncio.sleep(self._delay(failures))

    async def wait(
        self, flow_id: str, statuses: Collection[str] = TERMINAL, *, within: float = 60.0
    ) -> WorkFlowDetail:
        """The flow's detail once it is in one of ``statuses``. Raises TimeoutError after
        ``within`` seconds, FlowEnded if it ended in another status."""
        async with asyncio.timeout(within):
            detail = await self.detail(flow_id)
            if detail.info.status in statuses:
                return detail
            async for event in self.follow(flow_id):
                if changes_status(event.type):
                    detail = await self.detail(flow_id)
                    if detail.info.status in statuses:
                        return detail
            detail = await self.detail(flow_id)
            if detail.info.status in statuses:
                return detail
            raise FlowEnded(
                f"flow {flow_id} ended {detail.info.status}, not {'/'.join(sorted(statuses))}",
                data={"status": detail.info.status},
            )

    # -- definitions -------------------------------------------------------------------------

    async def register_definition(
        self, spec: DefinitionSpec | Mapping[str, Any]
    ) -> RegisteredResponse:
        body = spec if isinstance(spec, DefinitionSpec) else DefinitionSpec.model_validate(spec)
        return await self._send("POST", DEFINITIONS, RegisteredResponse, body=body)

    async def definitions(self) -> DefinitionList:
        return await self._send("GET", DEFINITIONS, DefinitionList)

    async def definition(self, name: str) -> DefinitionDetail:
        return await self._send("GET", f"{DEFINITIONS}/{quoted(name)}", DefinitionDetail)

    async def migrate(self, name: str, body: MigrationRequest) -> MigrationResponse:
        """Moves the flows of definition ``name`` that ``body`` selects to another version
        (``body.dryRun``: only says which would move and which are blocked)."""
        path = f"{DEFINITIONS}/{quoted(name)}/migrations"
        return await self._send("POST", path, MigrationResponse, body=body)

    # -- schedules ---------------------------------------------------------------------------

    async def create_schedule(self, spec: ScheduleCreate | Mapping[str, Any]) -> ScheduleInfo:
        body = spec if isinstance(spec, ScheduleCreate) else ScheduleCreate.model_validate(spec)
        return await self._send("POST", SCHEDULES, ScheduleInfo, body=body)

    async def schedules(self) -> AsyncIterator[ScheduleInfo]:
        cursor = ""
        while True:
            query = ScheduleListQuery(cursor=cursor, pageSize=200)
            listed, _ = await self._send_paged("GET", SCHEDULES, ScheduleList, query=query)
            for info in listed.schedules:
                yield info
            if not listed.nextCursor or not listed.schedules:
                return
            cursor = listed.nextCursor

    async def schedule(self, schedule_id: str) -> ScheduleDetail:
        return await self._send("GET", f"{SCHEDULES}/{quoted(schedule_id)}", ScheduleDetail)

    async def update_schedule(
        self, schedule_id: str, spec: ScheduleUpdate | Mapping[str, Any]
    ) -> ScheduleInfo:
        body = spec if isinstance(spec, ScheduleUpdate) else ScheduleUpdate.model_validate(spec)
        path = f"{SCHEDULES}/{quoted(schedule_id)}"
        return await self._send("PUT", path, ScheduleInfo, body=body)

    async def pause_schedule(self, schedule_id: str, *, reason: str = "") -> ScheduleInfo:
        path = f"{SCHEDULES}/{quoted(schedule_id)}/pause"
        return await self._send("POST", path, ScheduleInfo, body=ScheduleChange(reason=reason))

    async def resume_schedule(self, schedule_id: str, *, reason: str = "") -> ScheduleInfo:
        path = f"{SCHEDULES}/{quoted(schedule_id)}/resume"
        return await self._send("POST", path, ScheduleInfo, body=ScheduleChange(reason=reason))

    async def delete_schedule(self, schedule_id: str, *, reason: str = "") -> ScheduleInfo:
        path = f"{SCHEDULES}/{quoted(schedule_id)}"
        return await self._send("DELETE", path, ScheduleInfo, query=ScheduleChange(reason=reason))
