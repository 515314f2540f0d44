"""Workflow definitions: named maps of event key -> node, validated when they are made.

A definition's version is a hash of its content (keys, names, transitions, kinds, executors by
qualified name, timeouts, retry and polling settings). Flows record the version they were
created with, and reactors only pick up flows whose version they have registered, so old and
new code can run side by side during a deploy.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from flowlog.workflow.described import content_hash as _content_hash
from flowlog.workflow.described import described_callable as _described_callable
from flowlog.workflow.errors import DefinitionNotFound, InvalidDefinition
from flowlog.workflow.event_waits import EventWait
from flowlog.workflow.executor import Executor, PollFunction
from flowlog.workflow.fanout import Children, no_executor
from flowlog.workflow.limits import Concurrency, RateLimit

START = "start"
PAUSE = "pause"
"""A fail key that stops the flow on failure, for someone to fix and Start (or Retry)."""
PAUSE_SPELLINGS = frozenset({PAUSE, "PAUSE"})
"""``PAUSE`` is the seed's spelling; both mean the same, and neither can be a node key."""
DEFAULT_MAX_INTERRUPTIONS = 3

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
"""A task queue's name (docs/workers.md): queues need no declaration."""
QUEUE_KINDS = frozenset({"sync", "polling"})

DEFAULT_POLL_INTERVAL = 3.0
DEFAULT_POLL_DEADLINE = 24 * 3600.0


class NodeKind(enum.StrEnum):
    SYNC = "sync"
    POLLING = "polling"
    TIMER = "timer"
    """The executor says when the flow moves on (a datetime, a timedelta or seconds); the
    flow waits in its row until then, holding no worker."""
    CALLBACK = "callback"
    """The executor hands the node's callback token to the outside world; the flow waits,
    holding no worker, until someone completes the node (or its deadline passes)."""
    MAP = "map"
    """A child flow per element of a context list (app/workflow/fanout.py)."""
    PARALLEL = "parallel"
    """Branches of this definition, run side by side as child flows, then joined."""
    SUBFLOW = "subflow"
    """One child flow of another definition, waited for."""


WAITING_KINDS = frozenset({NodeKind.TIMER, NodeKind.CALLBACK})
CHILD_KINDS = frozenset({NodeKind.MAP, NodeKind.PARALLEL, NodeKind.SUBFLOW})
"""Nodes whose work is their children: they run no executor and hold no worker."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed node is retried before its fail transition is taken.

    ``max_attempts`` counts the first run: 1 means no retry. The n-th retry waits
    ``initial_interval * backoff ** (n - 1)`` seconds, at most ``max_interval``.
    """

    max_attempts: int = 1
    initial_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 300.0

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt ``failed_attempt`` (1-based) failed."""
        return min(self.max_interval, self.initial_interval * self.backoff ** (failed_attempt - 1))

    def problems(self) -> list[str]:
        found = []
        if self.max_attempts < 1:
            found.append("max_attempts must be at least 1")
        if self.initial_interval < 0 or self.max_interval < 0:
            found.append("retry intervals must not be negative")
        if self.backoff < 1:
            found.append("backoff must be at least 1")
        return found


NO_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class NodeDefinition:
    """One node: what runs, and where the flow goes on success and on failure.

    ``success`` is the key of the next node ("" ends the flow). ``fail`` is the key of a
    failure-handler node, ``"pause"`` (the flow stops; Start retries the node), or "" (the
    flow ends in Error). Polling nodes also need ``poll``. Callback nodes may have a
    ``deadline`` (seconds from when they start waiting; they fail with 40128 then).
    """

    name: str
    executor: Executor = no_executor
    success: str = ""
    fail: str = ""
    kind: NodeKind = NodeKind.SYNC
    poll: PollFunction | None = None
    poll_interval: float = DEFAULT_POLL_INTERVAL
    poll_deadline: float = DEFAULT_POLL_DEADLINE
    timeout: float | None = None
    retry: RetryPolicy = NO_RETRY
    max_interruptions: int = DEFAULT_MAX_INTERRUPTIONS
    """How many times in a row the node runs again after its worker was lost (40110); one
    more interruption fails it for good (40110, its fail transition). 0: never again."""
    deadline: float | None = None
    children: Children | None = None
    """A map, parallel or subflow node's settings (app/workflow/fanout.py)."""
    concurrency: Concurrency | None = None
    """At most this many executions of the node at once per key value (others wait)."""
    rate_limit: RateLimit | None = None
    """At most this many starts of the node per period per key value, evenly spaced."""
    queue: str | None = None
    """The task queue the node is offered on: workers poll for it over the task API and run
    it wherever they are (docs/workers.md); no reactor runs its executor, which is optional
    (a Python worker runs it when the worker's module has it)."""
    event: EventWait | None = None
    """A callback node's CloudEvent that completes it too (app/workflow/event_waits.py)."""

    def __post_init__(self) -> None:
        if self.fail in PAUSE_SPELLINGS:
            object.__setattr__(self, "fail", PAUSE)
        try:  # the kinds' names are accepted as well as NodeKind members
            object.__setattr__(self, "kind", NodeKind(self.kind))
        except ValueError:
            kinds = ", ".join(repr(k.value) for k in NodeKind)
            raise InvalidDefinition(
                self.name, [f"kind must be one of {kinds}, not {self.kind!r}"]
            ) from None

    def describe(self) -> dict[str, Any]:
        """The node as JSON, as recorded in the log (executors by qualified name)."""
        if self.kind in CHILD_KINDS:
            assert self.children is not None  # checked by the definition
            return {"name": self.name, "success": self.success, "fail": self.fail,
                    "kind": self.kind.value, **self.children.describe(self.kind.value),
                    **_described_limits(self)}  # fmt: skip
        described: dict[str, Any] = {
            "name": self.name,
            "success": self.success,
            "fail": self.fail,
            "kind": self.kind.value,
            "executor": (
                None
                if self.queue is not None and self.executor is no_executor
                else _described_callable(self.executor)
            ),
            "timeout": self.timeout,
            "retry": {
                "maxAttempts": self.retry.max_attempts,
                "initialInterval": self.retry.initial_interval,
                "backoff": self.retry.backoff,
                "maxInterval": self.retry.max_interval,
            },
        }
        if self.kind is NodeKind.POLLING:
            described["poll"] = _described_callable(self.poll)
            described["pollInterval"] = self.poll_interval
            described["pollDeadline"] = self.poll_deadline
        # Settings added after the first release are described only when they differ from
        # their default: every definition written before them keeps its version (its hash).
        if self.max_interruptions != DEFAULT_MAX_INTERRUPTIONS:
            described["maxInterruptions"] = self.max_interruptions
        if self.deadline is not None:
            described["deadline"] = self.deadline
        if self.queue is not None:
            described["queue"] = self.queue
        if self.event is not None:
            described["event"] = self.event.describe()
        return {**described, **_described_limits(self)}


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    """A named state machine; the entry key is ``start``. Raises InvalidDefinition if wrong."""

    name: str
    nodes: Mapping[str, NodeDefinition]
    spec: Mapping[str, Any] | None = None
    """The declarative source (JSON) of a definition registered over REST, from which any
    process can build it again (app/builtins.py); None for definitions in code."""
    concurrency: Concurrency | None = None
    """At most this many flows of the definition running at once per key value; the others
    wait in creation order (docs/workers.md, "Flow control")."""
    version: str = field(init=False)
    node_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        problems = _problems(self.name, self.nodes)
        if self.concurrency is not None:
            problems += [f"concurrency: {p}" for p in self.concurrency.problems()]
        if problems:
            raise InvalidDefinition(self.name or "(unnamed)", problems)
        object.__setattr__(self, "nodes", MappingProxyType(dict(self.nodes)))
        object.__setattr__(self, "version", _content_hash(self.describe()))
        object.__setattr__(self, "node_names", tuple(_success_path(self.nodes)))

    def node(self, key: str) -> NodeDefinition:
        return self.nodes[key]

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "name": self.name,
            "nodes": {key: node.describe() for key, node in sorted(self.nodes.items())},
        }
        if self.spec is not None:
            described["spec"] = dict(self.spec)
        if self.concurrency is not None:  # described only when set: versions stay the same
            described["concurrency"] = self.concurrency.describe()
        return described

    @property
    def limited(self) -> bool:
        """Whether starting its nodes asks the database first (a concurrency or rate limit)."""
        return self.concurrency is not None or any(
            n.concurrency is not None or n.rate_limit is not None for n in self.nodes.values()
        )


def visible_to(owner: str | None, tenant: str | None) -> bool:
    """Whether a definition owned by ``owner`` (None: from code; "": shared) is one that
    ``tenant`` may see and start (None: every definition, on an open server). SQL asks the
    same of ``definition_visible()`` (sql/migrations/0011_definition_owners.sql)."""
    return tenant is None or not owner or owner == tenant


class Registry:
    """The definitions this process knows, by name (latest registration) and by version,
    and who owns each name (docs/workflows.md, "Definitions and tenants")."""

    def __init__(self, definitions: Iterable[WorkflowDefinition] = ()) -> None:
        self._latest: dict[str, WorkflowDefinition] = {}
        self._versions: dict[str, WorkflowDefinition] = {}
        self._owners: dict[str, str | None] = {}
        self._limited: set[str] = set()
        for definition in definitions:
            self.register(definition)

    def register(self, definition: WorkflowDefinition, owner: str | None = None) -> None:
        """``owner``: the tenant that owns a definition registered over REST ("": shared by
        every tenant); None for definitions in code."""
        self._latest[definition.name] = definition
        self._versions[definition.version] = definition
        self._owners[definition.name] = owner
        if definition.limited:
            self._limited.add(definition.name)

    def limited(self, name: str) -> bool:
        """Whether a version of ``name`` known here has a concurrency or rate limit: its
        appends give slots back (app/workflow/admission.py)."""
        return name in self._limited

    def get(self, name: str, tenant: str | None = None) -> WorkflowDefinition:
        """The latest version of ``name``, if ``tenant`` may see it (None: any tenant); another
        tenant's definition does not exist for it."""
        found = self._latest.get(name)
        if found is None or not visible_to(self._owners.get(name), tenant):
            raise DefinitionNotFound(name)
        return found

    def owner(self, name: str) -> str | None:
        """Who owns ``name`` (None: code, or not known here; "": shared by every tenant)."""
        return self._owners.get(name)

    def get_version(self, name: str, version: str) -> WorkflowDefinition:
        try:
            return self._versions[version]
        except KeyError:
            raise DefinitionNotFound(name, version) from None

    def by_name(self, name: str) -> WorkflowDefinition | None:
        return self._latest.get(name)

    def by_version(self, version: str) -> WorkflowDefinition | None:
        return self._versions.get(version)

    def versions(self) -> list[str]:
        return sorted(self._versions)

    def versions_of(self, name: str) -> set[str]:
        """Every version of ``name`` registered here (a module may keep an old one beside
        the new, for its running flows)."""
        return {v for v, d in self._versions.items() if d.name == name}

    def latest(self) -> list[WorkflowDefinition]:
        return [self._latest[name] for name in sorted(self._latest)]


def _problems(name: str, nodes: Mapping[str, NodeDefinition]) -> list[str]:
    found: list[str] = []
    if not name:
        found.append("the definition needs a name")
    if not nodes:
        return [*found, "the definition has no nodes"]
    if START not in nodes:
        found.append(f"no entry node: the key {START!r} is missing")
    for reserved in sorted(PAUSE_SPELLINGS & set(nodes)):
        found.append(f"{reserved!r} is reserved for fail transitions and cannot be a node key")
    names: dict[str, str] = {}
    for key, node in nodes.items():
        where = f"node {key!r}"
        if not key:
            found.append("node keys must not be empty")
        if not node.name:
            found.append(f"{where} needs a name")
        elif node.name in names:
            found.append(f"{where} has the same name {node.name!r} as node {names[node.name]!r}")
        else:
            names[node.name] = key
        if node.success and node.success not in nodes:
            found.append(f"{where}: success key {node.success!r} does not exist")
        if node.fail and node.fail != PAUSE and node.fail not in nodes:
            found.append(f"{where}: fail key {node.fail!r} does not exist")
        if node.kind is NodeKind.PARALLEL and node.children is not None:
            for branch, entry in node.children.branches.items():
                if entry not in nodes:
                    found.append(f"{where}: branch {branch!r} enters at {entry!r}, which "
                                 "does not exist")  # fmt: skip
        found += [f"{where}: {p}" for p in _node_problems(node) + _limit_problems(key, node)]
    if START in nodes:
        reachable = _reachable(nodes)
        for key in nodes:
            if key not in reachable:
                found.append(f"node {key!r} cannot be reached from {START!r}")
        cycle = _cycle(nodes)
        if cycle:
            found.append("the transitions loop: " + " -> ".join(cycle))
    return found


def _node_problems(node: NodeDefinition) -> list[str]:
    if node.kind in CHILD_KINDS:
        return _parent_problems(node)
    found: list[str] = _queue_problems(node)
    remote = node.queue is not None
    if node.executor is no_executor and not remote:
        found.append(f"a {node.kind.value} node needs an executor")
    if node.children is not None:
        found.append(f"a {node.kind.value} node runs no children (make it a map, parallel "
                     "or subflow node)")  # fmt: skip
    if not _is_async(node.executor):
        found.append("the executor must be an async function (async def executor(node, ctx))")
    if node.kind is NodeKind.POLLING:
        if node.poll is None:
            if not remote:
                found.append("a polling node needs a poll function")
        elif not _is_async(node.poll):
            found.append("the poll function must be async (async def poll(node, ctx, op_id))")
        if node.poll_interval <= 0:
            found.append("poll_interval must be positive")
        if node.poll_deadline <= 0:
            found.append("poll_deadline must be positive")
    elif node.poll is not None:
        found.append(f"a {node.kind.value} node takes no poll function (make it a polling node)")
    if node.deadline is not None and node.kind is not NodeKind.CALLBACK:
        found.append("only a callback node has a deadline (a sync node has a timeout)")
    if node.event is not None:
        found += node.event.problems() if node.kind is NodeKind.CALLBACK else [
            "only a callback node waits for an event"]  # fmt: skip
    if node.deadline is not None and node.deadline <= 0:
        found.append("deadline must be positive")
    if node.timeout is not None and node.timeout <= 0:
        found.append("timeout must be positive")
    if node.max_interruptions < 0:
        found.append("max_interruptions must not be negative")
    found += node.retry.problems()
    return found


def _described_limits(node: NodeDefinition) -> dict[str, Any]:
    described: dict[str, Any] = {}
    if node.concurrency is not None:
        described["concurrency"] = node.concurrency.describe()
    if node.rate_limit is not None:
        described["rateLimit"] = node.rate_limit.describe()
    return described


def _limit_problems(key: str, node: NodeDefinition) -> list[str]:
    found = []
    if (node.concurrency or node.rate_limit) and "/" in key:
        # A limit's scope is "<kind>:<definition>/<node key>": read back from its last "/".
        found.append("the key of a node with a limit has no '/'")
    if node.concurrency is not None:
        found += [f"concurrency: {p}" for p in node.concurrency.problems()]
    if node.rate_limit is not None:
        found += [f"rateLimit: {p}" for p in node.rate_limit.problems()]
    return found


def _queue_problems(node: NodeDefinition) -> list[str]:
    if node.queue is None:
        return []
    if not isinstance(node.queue, str) or not QUEUE_NAME.match(node.queue):
        return ["a queue's name is 1 to 100 letters, digits and _ . : -"]
    if node.kind.value not in QUEUE_KINDS:
        return [f"a {node.kind.value} node cannot be offered on a queue (a sync or polling "
                "node can)"]  # fmt: skip
    return []


def _parent_problems(node: NodeDefinition) -> list[str]:
    kind = node.kind.value
    if node.children is None:
        return [f"a {kind} node needs its settings (children=Children(...))"]
    found = node.children.problems(kind) + _queue_problems(node)
    if node.executor is not no_executor or node.poll is not None:
        found.append(f"a {kind} node runs no executor: its children are its work")
    if node.retry != NO_RETRY:
        found.append(f"a {kind} node has no retry policy (its children's nodes have theirs)")
    if node.timeout is not None or node.deadline is not None:
        found.append(f"a {kind} node has no timeout or deadline")
    return found


def _is_async(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _edges(node: NodeDefinition) -> list[str]:
    spec = node.children
    branches = list(spec.branches.values()) if node.kind is NodeKind.PARALLEL and spec else []
    return [k for k in (node.success, node.fail, *branches) if k and k != PAUSE]


def _reachable(nodes: Mapping[str, NodeDefinition]) -> set[str]:
    seen: set[str] = set()
    todo = [START]
    while todo:
        key = todo.pop()
        if key in seen or key not in nodes:
            continue
        seen.add(key)
        todo += _edges(nodes[key])
    return seen


def _cycle(nodes: Mapping[str, NodeDefinition]) -> list[str]:
    """One loop of the transition graph, as a path of keys, or [] when there is none."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(key: str) -> list[str]:
        state[key] = 1
        path.append(key)
        for nxt in _edges(nodes[key]):
            if nxt not in nodes:
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[key] = 2
        return []

    for key in nodes:
        if key not in state and (found := visit(key)):
            return found
    return []


def _success_path(nodes: Mapping[str, NodeDefinition]) -> list[str]:
    names, key = [], START
    while key:
        node = nodes[key]
        names.append(node.name)
        key = node.success
    return names
