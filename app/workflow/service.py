"""The workflow service (the seed's operations), async, on the event log.

Each command loads the flow, decides, and appends with the expected version. When the flow
moved in between (a worker recorded an outcome, another operator acted), the command is
decided again on the fresh state: commands state an intent (start, stop, cancel...), so
deciding again is always safe. Refusals raise WorkflowError with the seed's codes and
change nothing. Start is asynchronous: it records the intent and returns; reactors do the work.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowlog.eventstore import AppendAlso, EventStore, Expect, NewEvent, WrongExpectedVersion
from flowlog.eventstore.pool import Executor
from flowlog.projections.inline import definition_statement
from flowlog.projections.reads import (
    Cursor,
    ListFilter,
    WorkflowPage,
    get_nodes,
    get_workflow,
    list_workflows,
    node_names,
)
from flowlog.projections.rows import NodeRow, WorkflowRow
from flowlog.times import Clock, utc_now
from flowlog.workflow.callbacks import CallbackTokens, flow_of, node_of, token_id
from flowlog.workflow.caller import SYSTEM, Caller
from flowlog.workflow.commands import (
    CancelFlow,
    Command,
    CompleteCallback,
    CompleteTask,
    CreateFlow,
    RetryFlow,
    SetContext,
    StartFlow,
    StopFlow,
)
from flowlog.workflow.decide import decide
from flowlog.workflow.definition import Registry, WorkflowDefinition
from flowlog.workflow.errors import Code, DefinitionTaken, FlowNotFound, WorkflowError
from flowlog.workflow.events import FlowStarted
from flowlog.workflow.executor import FlowContext
from flowlog.workflow.fold import evolve
from flowlog.workflow.idempotency import KeyedRequest, KeyTaken, Recorded, fingerprint
from flowlog.workflow.state import FlowState
from flowlog.workflow.store import FlowRepository
from flowlog.workflow.streams import (
    DEFINITION_REGISTERED,
    DEFINITION_STREAM,
    FLOW_STREAM,
    definition_owner,
    flow_stream,
)
from flowlog.workflow.task_decisions import no_reactor_needed

log = logging.getLogger(__name__)

# Conflicts mean someone else appended to the same flow; a few rounds always settle it.
_DECIDE_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Completion:
    """A callback node's completion: by ``token``, or by ``flow_id`` and ``node_id``."""

    succeeded: bool
    token: str | None = None
    flow_id: str | None = None
    node_id: str | None = None
    result: str = ""
    message: str = ""
    changes: Mapping[str, Any] = dataclasses.field(default_factory=dict)


Gone = Callable[[str], Awaitable[WorkflowError]]
"""Why the flow of an id is not in the hot log (the refusal to raise)."""


async def _not_found(flow_id: str) -> WorkflowError:
    return FlowNotFound(flow_id)


def _no_callback() -> WorkflowError:
    return WorkflowError(Code.CALLBACK_NOT_FOUND, "no callback waits for this token")


@dataclass(frozen=True, slots=True)
class WorkflowDetail:
    info: WorkflowRow
    nodes: list[NodeRow]
    node_names: list[str]
    executions: list[NodeRow]
    """Every node execution (``nodes`` is the seed's list, cut at a failure)."""


def seed_node_list(nodes: Sequence[NodeRow]) -> list[NodeRow]:
    """Node executions in order, ending at the first failed one that was not retried (a
    failure that ends the path, as the seed's detail ends at the first node in Error)."""
    shown = []
    for index, node in enumerate(nodes):
        shown.append(node)
        retried = any(later.node_key == node.node_key for later in nodes[index + 1 :])
        if node.status == "Error" and not retried:
            break
    return shown


class WorkflowService:
    def __init__(
        self,
        store: EventStore,
        registry: Registry,
        clock: Clock = utc_now,
        on_change: Callable[[], None] | None = None,
        flows: FlowRepository | None = None,
        tokens: CallbackTokens | None = None,
        gone: Gone | None = None,
    ) -> None:
        """``on_change`` is called after each command that changed a flow (the local reactor's
        ``poke``: a flow may have become due). ``flows``: a repository shared with the reactor,
        so that their appends are committed together. ``gone``: why a flow is no longer in the
        hot log (the engine gives the archive's answer: archived, 410); by default it does not
        exist."""
        self.store = store
        self.tokens = tokens or CallbackTokens(store.pool)
        self.registry = registry
        self.flows = flows or FlowRepository(store, clock)
        self.flows.limited = registry.limited
        self._clock = clock
        self._on_change = on_change
        self._gone = gone or _not_found

    # -- definitions -------------------------------------------------------------------------

    async def register_workflow(
        self, definition: WorkflowDefinition, caller: Caller = SYSTEM, tenant: str | None = None
    ) -> str:
        """Registers ``definition`` in this process and records its version in the log.

        A definition over REST (``definition.spec``) belongs to the tenant of its first
        version: ``tenant`` is the registering one, refused (DefinitionTaken) when the name is
        another's; None (an open server) may add versions to any name and shares new ones.
        Registering is idempotent by nature (an unchanged definition keeps its version); an
        idempotency key adds that the same key cannot register another definition."""
        version = definition.version

        async def same_version(_: Recorded) -> str:
            return version  # the key's request named this very version

        request = fingerprint("register", version)
        keyed = KeyedRequest(self.store.pool, caller.idempotency, request, same_version)
        if await keyed.answered() is not None:
            return version
        owner = await self._record_definition(definition, caller, tenant)
        self.registry.register(definition, owner)
        return await keyed.recorded(version, lambda: {"version": version})

    async def record_definitions(self) -> None:
        """Records every definition registered in code (at service start)."""
        for definition in self.registry.latest():
            await self._record_definition(definition)

    async def _record_definition(
        self, definition: WorkflowDefinition, caller: Caller = SYSTEM, tenant: str | None = None
    ) -> str | None:
        """Records ``definition``'s version in its stream (once); answers the name's owner."""
        stream = DEFINITION_STREAM + definition.name
        described = definition.describe()
        data: dict[str, Any] = {
            "name": definition.name,
            "version": definition.version,
            "nodeNames": list(definition.node_names),
            "definition": described,
        }
        if definition.spec is not None:
            data["tenant"] = tenant or ""
        for _ in range(_DECIDE_ATTEMPTS):
            recorded = await self.store.read_stream(stream)
            owner = definition_owner(recorded[0].data if recorded else data)
            if definition.spec is not None and tenant is not None and owner != tenant:
                raise DefinitionTaken(definition.name, owner)
            if any(e.data.get("version") == definition.version for e in recorded):
                return owner
            projected = definition_statement(
                definition.name, definition.version, definition.node_names, described, owner
            )
            try:
                await self.store.append(
                    stream,
                    [NewEvent(DEFINITION_REGISTERED, data, caller.metadata())],
                    len(recorded) or Expect.NO_STREAM,
                    also=AppendAlso.of(projected),
                )
            except WrongExpectedVersion:
                continue  # another process recorded a version meanwhile: look again
            log.info(
                "definition recorded",
                extra={
                    "definition": definition.name, "version": definition.version,
                    "tenant": data.get("tenant"), "trace_id": caller.trace_id,
                },
            )  # fmt: skip
            return owner
        raise WorkflowError(Code.BUSY, f"{definition.name} kept changing; try again")

    # -- flows -------------------------------------------------------------------------------

    async def create(
        self,
        biz_id: str,
        biz_type: str,
        flow_name: str,
        *,
        context: Mapping[str, Any] | None = None,
        caller: Caller = SYSTEM,
        tenant_id: str = "",
        user_id: str = "",
        start: bool = False,
        flow_id: str | None = None,
        visible_to: str | None = None,
        priority: int = 0,
    ) -> FlowState:
        """Creates a flow of the latest registered version of ``flow_name``; answers its state
        (the state the create left, when a key's request is sent again).

        The context is seeded with the trace, user and tenant ids, as the seed does. With
        ``start``, the flow is started in the same append. With the caller's idempotency key,
        the same request again answers the same flow and creates nothing. ``flow_id``: the
        caller's (a schedule's fire, so that a fire makes one flow only); WrongExpectedVersion
        when it exists already. ``visible_to``: the tenant whose definitions may be named
        (None: any). ``priority`` (0 to 9): among due work, higher first."""
        definition = self.registry.get(flow_name, visible_to)
        request = fingerprint(
            "create", tenant_id, user_id, flow_name, biz_id, biz_type, dict(context or {}), start,
            *([priority] if priority else []),
        )  # fmt: skip
        keyed = self._keyed(caller, request)
        if (first := await keyed.answered()) is not None:
            return first
        flow_id = flow_id or str(uuid.uuid4())
        seeded: dict[str, Any] = {
            FlowContext.TRACE_ID: caller.trace_id or "",
            FlowContext.USER_ID: user_id,
            FlowContext.TENANT_ID: tenant_id,
        }
        seeded.update(context or {})
        command = CreateFlow(flow_id, biz_id, biz_type, tenant_id, seeded, priority=priority)
        try:
            events = decide(None, command, definition, self._clock())
        except WorkflowError as refusal:
            return await keyed.refused(refusal)
        if start:
            events.append(FlowStarted())
            started: FlowState | None = None
            for event in events:
                started = evolve(started, event, self._clock())
            assert started is not None
            events += no_reactor_needed(started, definition, self._clock())
        try:
            state = await self.flows.append(None, events, caller, request)
        except KeyTaken:
            return await keyed.taken()
        self._changed()
        log.info(
            "workflow created",
            extra={"flow_id": flow_id, "definition": flow_name, "trace_id": caller.trace_id},
        )
        return state

    async def set_context(
        self,
        flow_id: str,
        changes: Mapping[str, Any],
        removed: Sequence[str] = (),
        caller: Caller = SYSTEM,
    ) -> FlowState:
        """The seed's InitContext: sets keys of the flow's context (and removes ``removed``)."""
        return await self._command(flow_id, SetContext(dict(changes), tuple(removed)), caller)

    async def start(self, flow_id: str, caller: Caller = SYSTEM) -> FlowState:
        """Starts (or resumes) the flow and returns at once; the reactor runs it."""
        return await self._command(flow_id, StartFlow(), caller)

    async def stop(self, flow_id: str, reason: str = "", caller: Caller = SYSTEM) -> FlowState:
        """Pauses the flow: a running node may finish, nothing further runs until Start."""
        return await self._command(flow_id, StopFlow(reason), caller)

    async def cancel(self, flow_id: str, reason: str = "", caller: Caller = SYSTEM) -> FlowState:
        """Cancels the flow; a running executor is interrupted by its worker."""
        return await self._command(flow_id, CancelFlow(reason), caller)

    async def retry(
        self,
        flow_id: str,
        changes: Mapping[str, Any] | None = None,
        removed: Sequence[str] = (),
        caller: Caller = SYSTEM,
    ) -> FlowState:
        """Continues a flow that ended in Error (or stopped on a failed node) from the node
        that failed, after applying ``changes`` to its context."""
        return await self._command(flow_id, RetryFlow(dict(changes or {}), tuple(removed)), caller)

    async def complete_callback(
        self,
        completion: Completion,
        caller: Caller = SYSTEM,
        tenant_id: str | None = None,
    ) -> FlowState:
        """Completes a waiting callback node, by its token or (an operator) by flow and node
        id; the node's outcome and the transition it takes are recorded in one append.

        ``tenant_id`` (None: any) is the caller's: another tenant's token or flow is not
        found, as a forged token is. A node that waits no more is refused (40127)."""
        token = completion.token
        if token is not None:
            node_id = node_of(token)
            if node_id is None:
                raise _no_callback()
            flow_id = flow_of(node_id)
        else:
            if completion.flow_id is None or completion.node_id is None:
                raise WorkflowError(Code.BAD_INPUT, "give a token, or a flow id and a node id")
            flow_id, node_id = completion.flow_id, completion.node_id
        # The flow's tenant is its stream's (FlowCreated names it): the token is checked against
        # the fold the command decides on, with no read of the flow's row first.
        try:
            state = await self.flows.load(flow_id)
        except FlowNotFound:
            raise _no_callback() if token is not None else FlowNotFound(flow_id) from None
        if tenant_id is not None and state.tenant_id != tenant_id:
            raise _no_callback() if token is not None else FlowNotFound(flow_id)
        if token is not None and not await self.tokens.valid(token, node_id, state.tenant_id):
            raise _no_callback()
        command = CompleteCallback(
            node_id,
            completion.succeeded,
            by=caller.actor,
            callback=None if token is None else token_id(token),
            reason=caller.reason or "",
            result=completion.result,
            message=completion.message,
            changes=dict(completion.changes),
        )
        return await self._command(flow_id, command, caller, with_definition=True, loaded=state)

    async def complete_task(
        self, flow_id: str, command: CompleteTask, caller: Caller = SYSTEM
    ) -> FlowState:
        """Records a worker's answer to a task (app/tasks/): decided with the flow's
        definition, as the reactor decides an executor's outcome, in one append."""
        return await self._command(flow_id, command, caller, with_definition=True)

    async def answered(self, flow_id: str, command: Command, caller: Caller) -> FlowState | None:
        """The answer ``command`` had under the caller's idempotency key, when it was sent
        before (None: not yet, or no key): a caller that checks something else first (a task's
        lease) asks this before refusing a request sent again."""
        request = fingerprint(type(command).__name__, flow_id, dataclasses.asdict(command))
        return await self._keyed(caller, request).answered()

    async def callback_token(self, state: FlowState) -> str | None:
        """The token of the callback node ``state`` waits on, if it waits on one."""
        running = state.running_node
        if running is None or running.kind != "callback":
            return None
        return await self.tokens.token(running.node_id, state.tenant_id)

    async def get(self, flow_id: str) -> FlowState:
        """The flow's state folded from its stream (always current)."""
        return await self.flows.load(flow_id)

    # -- queries (served by the projections) ---------------------------------------------------

    async def list_workflows(
        self,
        where: ListFilter | None = None,
        *,
        page: int = 1,
        page_size: int = 10,
        cursor: str | None = None,
    ) -> WorkflowPage:
        """The seed's ListWorkFlows: newest first, filtered, paged, with the total."""
        after = Cursor.decode(cursor) if cursor else None
        return await list_workflows(
            self.store.pool, where or ListFilter(), page=page, page_size=page_size, after=after
        )

    async def detail_workflow(self, flow_id: str, reader: Executor | None = None) -> WorkflowDetail:
        """The seed's DetailWorkFlow: the flow, its node executions up to the first failure
        that was not retried, and the names along its definition's success path (read from
        ``reader``, a replica's pool say; by default the primary)."""
        pool = reader or self.store.pool
        info = await get_workflow(pool, flow_id)
        if info is None:
            raise FlowNotFound(flow_id)
        nodes = await get_nodes(pool, flow_id)
        names = await node_names(pool, info.definition_version)
        if names is None:
            known = self.registry.by_version(info.definition_version)
            names = list(known.node_names) if known is not None else []
        return WorkflowDetail(info, seed_node_list(nodes), names, nodes)

    def poke(self) -> None:
        """Flows may have become due (appended to by a caller other than a command of this
        service: a migration)."""
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    async def _command(
        self, flow_id: str, command: Command, caller: Caller, *, with_definition: bool = False,
        loaded: FlowState | None = None,
    ) -> FlowState:  # fmt: skip
        """Decides ``command`` on the flow and appends what it decides (``loaded``: the flow as
        the caller just read it, decided on first instead of reading it again)."""
        request = fingerprint(type(command).__name__, flow_id, dataclasses.asdict(command))
        keyed = self._keyed(caller, request)
        if (first := await keyed.answered()) is not None:
            return first
        for _ in range(_DECIDE_ATTEMPTS):
            state = loaded if loaded is not None else await self.flows.load(flow_id)
            loaded = None  # a stale version is read again
            # Operators' commands need no definition: this process may not know the flow's
            # version (a flow created by older or newer code) and can still stop or cancel it.
            # A callback's completion does: it decides the node's transition.
            definition = None
            if with_definition:
                definition = self.registry.get_version(state.name, state.definition_version)
            try:
                events = decide(state, command, definition, self._clock())
            except WorkflowError as refusal:
                return await keyed.refused(refusal)
            if not events:
                return await keyed.unchanged(state, flow_stream(flow_id), state.version)
            try:
                new_state = await self.flows.append(state, events, caller, request)
            except WrongExpectedVersion:
                # The flow moved: perhaps because a twin (the same key) did what was asked.
                if (first := await keyed.answered()) is not None:
                    return first
                continue
            except KeyTaken:
                return await keyed.taken()
            self._changed()
            log.info(
                "workflow command",
                extra={
                    "flow_id": flow_id,
                    "command": type(command).__name__,
                    "status": new_state.status.value,
                    "trace_id": caller.trace_id,
                },
            )
            return new_state
        raise WorkflowError(Code.BUSY, f"workflow {flow_id} kept changing: try again")

    def _keyed(self, caller: Caller, request: str) -> KeyedRequest[FlowState]:
        return KeyedRequest(self.store.pool, caller.idempotency, request, self._replayed)

    async def _replayed(self, recorded: Recorded) -> FlowState:
        """The answer of a key's first request: its refusal again, or the flow as it left it
        (folded from the log up to that version)."""
        stream_id, version = recorded.effect()
        events = await self.store.read_stream(stream_id, 1, version)
        if not events:
            # Its flow left the hot log since: archived (410, as every command on it), else
            # gone. The key is its tenant's, so the flow is the caller's to be told of.
            raise await self._gone(stream_id.removeprefix(FLOW_STREAM))
        return FlowRepository.fold(events)
