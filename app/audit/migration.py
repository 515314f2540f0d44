"""Moving a flow to another version of its definition: the decision, pure.

A flow moves **cleanly** from version ``from`` to the target when it has not ended, is on
``from``, every node it can go on from (the node it runs or runs next, the node Retry would run
again, the node whose children a retry takes over) exists in the target once renamed by the
node map, and its whole history, renamed, replays the same under the target: every event the
definition decided is decided again from the state before it by the target
(``check.divergence_of``, the machinery of ``flowlog check-definition``). Otherwise it is
**blocked**, with the reason. A flow already on the target is reported as such.

The node map renames keys (a key of ``from`` -> a key of the target): keys are what
transitions, the cursor and the executions name; a node's name is only what people read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from flowlog.audit.check import divergence_of
from flowlog.workflow.definition import (
    DEFAULT_MAX_INTERRUPTIONS,
    DEFAULT_POLL_DEADLINE,
    DEFAULT_POLL_INTERVAL,
    NO_RETRY,
    NodeDefinition,
    NodeKind,
    RetryPolicy,
    WorkflowDefinition,
)
from flowlog.workflow.events import (
    FlowCreated,
    FlowEvent,
    FlowMigrated,
    FlowRetried,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
)
from flowlog.workflow.fanout import DEFAULT_MAX_CONCURRENCY, Children, no_executor
from flowlog.workflow.fold import FoldError, fold
from flowlog.workflow.state import FlowState

Outcome = Literal["clean", "blocked", "already"]
History = Sequence[tuple[FlowEvent, datetime]]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One flow's answer: ``clean`` (``event`` moves it), ``blocked`` (``reason`` says why)
    or ``already`` (on the target version)."""

    outcome: Outcome
    reason: str = ""
    event: FlowMigrated | None = None
    state: FlowState | None = None
    """The flow as judged (its version is the expected version of the append)."""


def judge(
    history: History,
    target: WorkflowDefinition,
    target_version: str,
    from_version: str,
    node_map: Mapping[str, str],
) -> Verdict:
    """Whether the flow of ``history`` moves cleanly from ``from_version`` to ``target``
    (recorded as ``target_version``: a definition rebuilt from its recorded description
    hashes to another version than the one its flows name) under ``node_map``."""
    try:
        state = fold(history)
    except FoldError as exc:
        return Verdict("blocked", f"its history does not fold: {exc}")
    if state is None:
        return Verdict("blocked", "it has no history")
    if state.definition_version == target_version:
        return Verdict("already", f"it is on version {target_version} already", state=state)
    if state.archived:
        return Verdict("blocked", "it is archived", state=state)
    if state.definition_version != from_version:
        return Verdict("blocked", f"it is on version {state.definition_version}, not "
                       f"{from_version}", state=state)  # fmt: skip
    if state.terminal:
        return Verdict("blocked", f"it has ended ({state.status.value})", state=state)
    for key, role in _resume_points(state):
        mapped = node_map.get(key, key)
        if mapped not in target.nodes:
            via = f" (mapped to {mapped!r})" if mapped != key else ""
            return Verdict("blocked", f"{role} {key!r}{via} does not exist in version "
                           f"{target_version}; name it in nodeMap", state=state)  # fmt: skip
    divergence = divergence_of(renamed_history(history, target, target_version, node_map),
                               target)  # fmt: skip
    if divergence is not None:
        return Verdict("blocked", f"event {divergence.version} replays otherwise: recorded "
                       f"{divergence.recorded}; version {target_version} decides "
                       f"{divergence.now}", state=state)  # fmt: skip
    renames = {old: new for old, new in sorted(node_map.items()) if old != new}
    event = FlowMigrated(from_version=from_version, to_version=target_version, node_map=renames)
    return Verdict("clean", event=event, state=state)


def _resume_points(state: FlowState) -> list[tuple[str, str]]:
    """The keys the flow can go on from, each with what it is to the flow."""
    points = []
    if state.cursor is not None:
        points.append((state.cursor, "its next node"))
    if state.last_node is not None:
        points.append((state.last_node.key, "its last node"))
    if state.failed_key is not None:
        points.append((state.failed_key, "the node Retry runs again"))
    if state.fan is not None:
        points.append((state.fan.key, "the node running its children"))
    return points


def renamed_history(
    history: History, target: WorkflowDefinition, target_version: str, node_map: Mapping[str, str]
) -> list[tuple[FlowEvent, datetime]]:
    """``history`` as if the flow had run under the target: keys renamed (through earlier
    migrations' maps too, for events before them), names the target's, and earlier
    migrations made no-ops on the target version."""
    renamed: list[tuple[FlowEvent, datetime]] = []
    mapping = dict(node_map)
    for event, at in reversed(history):
        if isinstance(event, FlowMigrated):
            # Events before it name keys of its source: rename them to its target's first.
            earlier = {old: mapping.get(new, new) for old, new in event.node_map.items()}
            mapping = {**mapping, **earlier}
            event = FlowMigrated(from_version=target_version, to_version=target_version)
        else:
            event = _renamed(event, mapping, target, target_version)
        renamed.append((event, at))
    renamed.reverse()
    return renamed


def _renamed(
    event: FlowEvent, mapping: Mapping[str, str], target: WorkflowDefinition, version: str
) -> FlowEvent:
    def key(old: str) -> str:
        return mapping.get(old, old)

    match event:
        case FlowCreated():
            entry = None if event.entry is None else key(event.entry)
            return event.model_copy(update={"entry": entry, "definition_version": version})
        case NodeStarted():
            new = key(event.key)
            node = target.nodes.get(new)
            return event.model_copy(update={"key": new, "name": node.name if node else event.name})
        case NodeSucceeded() | NodeFailed() if event.next is not None:
            return event.model_copy(update={"next": key(event.next)})
        case FlowRetried():
            return event.model_copy(update={"from_key": key(event.from_key)})
    return event


def map_problems(
    node_map: Mapping[str, str], source_keys: Sequence[str], target_keys: Sequence[str]
) -> list[str]:
    """What is wrong with a node map from a version of ``source_keys`` to one of
    ``target_keys``: keys that are not there, and two keys renamed to one."""
    problems = []
    for old, new in sorted(node_map.items()):
        if old not in source_keys:
            problems.append(f"{old!r} is not a node key of the version migrated from")
        if new not in target_keys:
            problems.append(f"{new!r} is not a node key of the version migrated to")
    targets: dict[str, str] = {}
    for old, new in sorted(node_map.items()):
        if new in targets and old != new:
            problems.append(f"{targets[new]!r} and {old!r} are both mapped to {new!r}")
        targets.setdefault(new, old)
    return problems


async def _recorded_only(node: Any, ctx: Any) -> None:
    """The executor of a definition rebuilt from its recorded description: a migration's
    replay decides, it never runs a node."""
    raise AssertionError("a definition rebuilt from the log runs no node")


async def _recorded_poll(node: Any, ctx: Any, operation_id: str) -> Any:
    """Its poll function, as never called."""
    raise AssertionError("a definition rebuilt from the log polls nothing")


def shape_of(name: str, described: Mapping[str, Any]) -> WorkflowDefinition:
    """A definition from its recorded description (``WorkflowDefinition.describe()``), with
    stand-in executors: what a replay decides from (transitions, kinds, retries, polling,
    deadlines, children, queues), for a version in code that this process did not load.
    Limits are left out: they decide when a node starts, never what is recorded."""
    nodes = {key: _node_shape(node) for key, node in described.get("nodes", {}).items()}
    return WorkflowDefinition(name, nodes)


def _node_shape(node: Mapping[str, Any]) -> NodeDefinition:
    kind = NodeKind(node.get("kind", "sync"))
    common: dict[str, Any] = {"name": node["name"], "success": node.get("success", ""),
                              "fail": node.get("fail", ""), "kind": kind,
                              "queue": node.get("queue")}  # fmt: skip
    if kind in (NodeKind.MAP, NodeKind.PARALLEL, NodeKind.SUBFLOW):
        children = Children(
            flow=node.get("flow", ""), items=node.get("items", ""),
            item_key=node.get("itemKey", "item"),
            max_concurrency=node.get("maxConcurrency", DEFAULT_MAX_CONCURRENCY),
            tolerated_failures=node.get("toleratedFailures", 0),
            results_key=node.get("resultsKey", ""), result_key=node.get("resultKey", ""),
            context=node.get("context", {}), branches=node.get("branches", {}),
            join=node.get("join", "all"), on_branch_failure=node.get("onBranchFailure", "fail"),
        )  # fmt: skip
        return NodeDefinition(children=children, **common)
    retry = node.get("retry")
    policy = NO_RETRY if not retry else RetryPolicy(
        retry["maxAttempts"], retry["initialInterval"], retry["backoff"], retry["maxInterval"]
    )  # fmt: skip
    remote = node.get("executor") is None and node.get("queue") is not None
    polling = kind is NodeKind.POLLING
    return NodeDefinition(
        executor=no_executor if remote else _recorded_only,
        poll=_recorded_poll if polling and not remote else None,
        poll_interval=node.get("pollInterval", DEFAULT_POLL_INTERVAL),
        poll_deadline=node.get("pollDeadline", DEFAULT_POLL_DEADLINE),
        timeout=node.get("timeout"), retry=policy, deadline=node.get("deadline"),
        max_interruptions=node.get("maxInterruptions", DEFAULT_MAX_INTERRUPTIONS), **common,
    )  # fmt: skip
