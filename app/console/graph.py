"""A definition drawn as a graph: where each node and edge goes in the SVG. Pure.

The input is a definition as recorded in the log (``WorkflowDefinition.describe()``, the
``definition`` column of ``workflow_definitions``): nodes by key, each with a success and a
fail transition. Definitions are acyclic (the engine refuses loops), so nodes are laid out in
layers by their longest distance from ``start``; the success path from ``start`` runs along
the top row, failure handlers and other branches below it. Success edges end at the next node
or at the end marker; fail edges are drawn apart (dashed, labelled); a ``pause`` on failure
is a note under its node, and a failure that ends the flow draws no edge (the node table says
so), which keeps small definitions readable. A node offered on a task queue has the queue's
name noted above it (in the margin over the top row, or the gap between rows).

Nodes that run children are larger, with a line saying what they run. A ``parallel`` node
forks to each branch's entry (an edge labelled with the branch's name), and where a branch's
path ends it joins into the parallel node's success (the node after it, or the end marker):
the first branch runs along the top with the success path, the others in rows below. A
``map`` or ``subflow`` node is one node: its children are flows of another definition, which
the node names (the flow's page adds their counts). A definition without such nodes is drawn
as before they existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flowlog.workflow.definition import PAUSE

END = ""
NODE_WIDTH = 168
NODE_HEIGHT = 48
CHILD_WIDTH = 240
CHILD_HEIGHT = 80
"""A node that runs children: room for what it runs and, on a flow's page, their counts."""
LAYER_GAP = 64
ROW_GAP = 40
MARGIN = 24
START_RADIUS = 9
PARENT_KINDS = frozenset({"map", "parallel", "subflow"})
EdgeKind = Literal["success", "fail", "fork", "join"]
Nodes = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class GraphNode:
    key: str
    name: str
    kind: str
    layer: int
    row: int
    x: float
    y: float
    pauses_on_failure: bool
    width: float = NODE_WIDTH
    height: float = NODE_HEIGHT
    detail: str = ""
    """A map, parallel or subflow node: what it runs (``map: backup over clusters``)."""
    branch: str | None = None
    """A node on a parallel node's branch: the branch's name."""
    queue: str | None = None
    """The task queue the node is offered on (a worker runs it), noted above it."""

    @property
    def cx(self) -> float:
        return self.x + self.width / 2

    @property
    def cy(self) -> float:
        return self.y + self.height / 2

    @property
    def runs_children(self) -> bool:
        return self.kind in PARENT_KINDS


@dataclass(frozen=True, slots=True)
class GraphEdge:
    source: str
    """A node key, or ``""`` for the start marker."""
    target: str
    """A node key, or ``""`` for the end marker."""
    kind: EdgeKind
    """success, fail; fork (a parallel node to a branch's entry), join (where a branch ends,
    into the parallel node's success)."""
    path: str
    """SVG path data."""
    label_x: float
    label_y: float
    label: str = ""
    """A fork's branch name."""


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    width: float
    height: float
    start: tuple[float, float]
    end: tuple[float, float]

    def node(self, key: str) -> GraphNode:
        return next(n for n in self.nodes if n.key == key)

    @property
    def forks(self) -> bool:
        return any(e.kind == "fork" for e in self.edges)


class _Shape:
    """The transitions of a definition as drawn: a parallel node leads to its branches'
    entries, and the end of a branch's path leads to where the branches join."""

    def __init__(self, nodes: Nodes, order: Mapping[str, Sequence[str]]) -> None:
        self.nodes = nodes
        self.order = order
        self.branch_of: dict[str, tuple[str, str]] = {}
        """A node on a branch: (its parallel node, the branch's name); the first such."""
        self.lead: dict[str, str] = {}
        """A branch node after another of its branch (by success): that one."""
        for key in sorted(nodes):
            for name, entry in self.branches(key).items():
                self._claim(key, name, entry)

    def branches(self, key: str) -> dict[str, str]:
        spec = self.nodes[key]
        if spec.get("kind") != "parallel":
            return {}
        found = spec.get("branches") or {}
        known = list(self.order.get(key, ()))
        names = sorted(found, key=lambda name: known.index(name) if name in known else len(known))
        return {str(name): str(found[name]) for name in names if found[name] in self.nodes}

    def _claim(self, parallel: str, name: str, entry: str) -> None:
        queue = [entry]
        while queue:
            key = queue.pop(0)
            if key in self.branch_of or key == parallel:
                continue
            self.branch_of[key] = (parallel, name)
            spec = self.nodes[key]
            success, fail = str(spec.get("success", END)), str(spec.get("fail", END))
            if success in self.nodes:
                self.lead.setdefault(success, key)
            queue += [t for t in (success, fail) if t in self.nodes]

    def join_of(self, key: str) -> str | None:
        """Where a branch's path that ends at ``key`` joins: the success of its parallel node
        (or, when that node ends a branch too, where that branch joins; else the end). None
        for a node on no branch, or one whose success is another node."""
        if key not in self.branch_of or self._success(key) != END:
            return None
        seen: set[str] = set()
        parallel = self.branch_of[key][0]
        while self._success(parallel) == END:
            if parallel not in self.branch_of or parallel in seen:
                return END
            seen.add(parallel)
            parallel = self.branch_of[parallel][0]
        return self._success(parallel)

    def _success(self, key: str) -> str:
        return str(self.nodes[key].get("success", END))

    def targets(self, key: str) -> list[str]:
        spec = self.nodes[key]
        fail = str(spec.get("fail", END))
        entries = list(self.branches(key).values())
        if entries:
            return [*entries, fail]
        success = str(spec.get("success", END))
        if success == END:
            success = self.join_of(key) or END
        return [success, fail]

    def next_on_path(self, key: str) -> str:
        """The node after ``key`` on the top row: a parallel node's first branch, a branch's
        join once it ends, else the success."""
        entries = list(self.branches(key).values())
        if entries:
            return entries[0]
        success = str(self.nodes[key].get("success", END))
        return (self.join_of(key) or END) if success == END else success


def layout(
    definition: Mapping[str, Any], branch_order: Mapping[str, Sequence[str]] | None = None
) -> Graph:
    """Positions of the nodes and edges of ``definition`` (as ``describe()`` writes it).

    A parallel node's branches are drawn in the order of ``branch_order`` (its key -> branch
    names), else as the definition lists them: a definition read back from PostgreSQL (jsonb)
    lists them by name, not as declared, while a flow's children know the declared order
    (their index)."""
    nodes: Nodes = definition.get("nodes", {})
    shape = _Shape(nodes, branch_order or {})
    order = _discovery(shape)
    layers = _layers(shape, order)
    rows = _rows(shape, layers, order)
    pitch = CHILD_HEIGHT if any(_kind(nodes[k]) in PARENT_KINDS for k in layers) else NODE_HEIGHT
    last_layer = max(layers.values(), default=-1)
    widths: dict[int, float] = dict.fromkeys(range(last_layer + 1), float(NODE_WIDTH))
    for key, layer in layers.items():
        widths[layer] = max(widths[layer], _size(nodes[key])[0])
    xs = [MARGIN + 2 * START_RADIUS + LAYER_GAP / 2]
    for layer in range(last_layer + 1):
        xs.append(xs[-1] + widths[layer] + LAYER_GAP)
    placed = tuple(
        _placed(key, nodes[key], shape, layers[key], rows[key], xs[layers[key]], pitch)
        for key in sorted(layers, key=lambda k: (layers[k], rows[k]))
    )
    by_key = {n.key: n for n in placed}
    end = (xs[last_layer + 1] + START_RADIUS, MARGIN + pitch / 2)
    start = (MARGIN + START_RADIUS, MARGIN + pitch / 2)
    edges: list[GraphEdge] = []
    if "start" in by_key:
        first = by_key["start"]
        edges.append(_edge("", "start", "success", (start[0] + START_RADIUS, start[1]), first))
    for node in placed:
        edges += _edges_of(node, nodes[node.key], shape, by_key, end)
    rows_used = max((n.row for n in placed), default=0) + 1
    height = 2 * MARGIN + rows_used * pitch + (rows_used - 1) * ROW_GAP + 14
    width = end[0] + START_RADIUS + MARGIN
    return Graph(placed, tuple(edges), width, height, start, end)


def _kind(spec: Mapping[str, Any]) -> str:
    return str(spec.get("kind", "sync"))


def _size(spec: Mapping[str, Any]) -> tuple[float, float]:
    if _kind(spec) in PARENT_KINDS:
        return CHILD_WIDTH, CHILD_HEIGHT
    return NODE_WIDTH, NODE_HEIGHT


def _placed(
    key: str, spec: Mapping[str, Any], shape: _Shape, layer: int, row: int, x: float, pitch: float
) -> GraphNode:
    width, height = _size(spec)
    branch = shape.branch_of.get(key)
    return GraphNode(
        key=key,
        name=str(spec.get("name", key)),
        kind=_kind(spec),
        layer=layer,
        row=row,
        x=x,
        y=MARGIN + row * (pitch + ROW_GAP) + (pitch - height) / 2,
        pauses_on_failure=spec.get("fail") == PAUSE,
        width=width,
        height=height,
        detail=detail(spec),
        branch=None if branch is None else branch[1],
        queue=None if spec.get("queue") is None else str(spec["queue"]),
    )


def detail(spec: Mapping[str, Any]) -> str:
    """What a node that runs children runs, in a few words ("" for other nodes)."""
    kind = _kind(spec)
    if kind == "map":
        return f"map: {spec.get('flow', '?')} over {spec.get('items', '?')}"
    if kind == "subflow":
        return f"sub-flow: {spec.get('flow', '?')}"
    if kind == "parallel":
        count = len(spec.get("branches") or {})
        join = spec.get("join", "all")
        joined = f"{join} of {count}" if isinstance(join, int) else str(join)
        return f"parallel: {count} branch{'es' if count != 1 else ''}, join {joined}"
    return ""


def _edges_of(
    node: GraphNode,
    spec: Mapping[str, Any],
    shape: _Shape,
    by_key: Mapping[str, GraphNode],
    end: tuple[float, float],
) -> list[GraphEdge]:
    edges: list[GraphEdge] = []
    branches = shape.branches(node.key)
    for name, entry in branches.items():
        if entry in by_key:
            edges.append(_fork(node, by_key[entry], name))
    if not branches:
        success = str(spec.get("success", END))
        join = shape.join_of(node.key) if success == END else None
        if success in by_key:
            edges.append(_between(node, by_key[success], "success"))
        elif join in by_key:
            edges.append(_edge(node.key, str(join), "join", _right(node), by_key[str(join)]))
        elif join == END:
            edges.append(_to_end(node, end, "join"))
        elif success == END:
            edges.append(_to_end(node, end))
    fail = str(spec.get("fail", END))
    if fail in by_key:
        edges.append(_between(node, by_key[fail], "fail"))
    return edges


def _layers(shape: _Shape, order: Mapping[str, int]) -> dict[str, int]:
    """Each node reachable from ``start``: its longest distance from it (a DAG, so finite;
    a cycle, which the engine refuses, would only stop growing here)."""
    nodes = shape.nodes
    reachable = [key for key in order if key in nodes]
    indegree = dict.fromkeys(reachable, 0)
    for key in reachable:
        for target in shape.targets(key):
            if target in indegree:
                indegree[target] += 1
    layers = dict.fromkeys(reachable, 0)
    ready = [key for key in reachable if indegree[key] == 0]
    while ready:  # Kahn's topological order: each node after every node that leads to it
        key = ready.pop(0)
        for target in shape.targets(key):
            if target in indegree:
                layers[target] = max(layers[target], layers[key] + 1)
                indegree[target] -= 1
                if indegree[target] == 0:
                    ready.append(target)
    return layers


def _rows(shape: _Shape, layers: Mapping[str, int], order: Mapping[str, int]) -> dict[str, int]:
    """The top row for the path from ``start``; each other node in the first row free in its
    layer, but a branch's node in the row of the node before it on its branch, when free."""
    spine = _path(shape)
    rows: dict[str, int] = {key: 0 for key in spine}
    taken: dict[tuple[int, int], str] = {(layers[key], 0): key for key in spine}
    for key in sorted(layers, key=lambda k: (layers[k], order[k])):
        if key in rows:
            continue
        row = rows.get(shape.lead.get(key, ""), 0)
        if row == 0 or (layers[key], row) in taken:
            row = 1
            while (layers[key], row) in taken:
                row += 1
        rows[key] = row
        taken[(layers[key], row)] = key
    return rows


def _path(shape: _Shape) -> list[str]:
    path: list[str] = []
    key = "start"
    while key in shape.nodes and key not in path:
        path.append(key)
        key = shape.next_on_path(key)
    return path


def _discovery(shape: _Shape) -> dict[str, int]:
    """The order a breadth-first walk from ``start`` meets the nodes (success first)."""
    nodes = shape.nodes
    order: dict[str, int] = {}
    queue = ["start"] if "start" in nodes else []
    while queue:
        key = queue.pop(0)
        if key in order:
            continue
        order[key] = len(order)
        queue += [t for t in shape.targets(key) if t in nodes]
    for key in sorted(nodes):
        order.setdefault(key, len(order))
    return order


def _right(node: GraphNode) -> tuple[float, float]:
    return node.x + node.width, node.cy


def _between(source: GraphNode, target: GraphNode, kind: EdgeKind) -> GraphEdge:
    if kind == "fail" and target.row > source.row:
        # Down to a handler below: leave from the bottom, clear of the success path along
        # the top, and enter the handler from the side that faces the source.
        x0, y0 = source.cx, source.y + source.height
        x1 = target.x if target.cx >= x0 else target.x + target.width
        y1 = target.cy
        path = f"M{x0:.1f},{y0:.1f} C{x0:.1f},{y1:.1f} {x0:.1f},{y1:.1f} {x1:.1f},{y1:.1f}"
        return GraphEdge(source.key, target.key, kind, path, x0 + 5, y0 + 14)
    return _edge(source.key, target.key, kind, _right(source), target)


def _fork(source: GraphNode, entry: GraphNode, branch: str) -> GraphEdge:
    edge = _edge(source.key, entry.key, "fork", _right(source), entry)
    # The branch's name just before its entry, above the edge where it comes in level.
    return GraphEdge(edge.source, edge.target, "fork", edge.path, entry.x - 6, entry.cy - 6,
                     branch)  # fmt: skip


def _edge(
    source: str, target_key: str, kind: EdgeKind, origin: tuple[float, float], target: GraphNode
) -> GraphEdge:
    x0, y0 = origin
    x1, y1 = target.x, target.cy
    bend = max(24.0, (x1 - x0) / 2)
    path = (
        f"M{x0:.1f},{y0:.1f} C{x0 + bend:.1f},{y0:.1f} {x1 - bend:.1f},{y1:.1f} {x1:.1f},{y1:.1f}"
    )
    return GraphEdge(source, target_key, kind, path, (x0 + x1) / 2, (y0 + y1) / 2 - 6)


def _to_end(source: GraphNode, end: tuple[float, float], kind: EdgeKind = "success") -> GraphEdge:
    x0, y0 = _right(source)
    x1, y1 = end[0] - START_RADIUS, end[1]
    # A handler's path ends too: it curves up to the end marker.
    path = f"M{x0:.1f},{y0:.1f} L{x1:.1f},{y1:.1f}" if source.row == 0 else _curve(x0, y0, x1, y1)
    return GraphEdge(source.key, END, kind, path, (x0 + x1) / 2, (y0 + y1) / 2 - 6)


def _curve(x0: float, y0: float, x1: float, y1: float) -> str:
    """A left-to-right S curve from (x0, y0) to (x1, y1)."""
    bend = max(24.0, (x1 - x0) / 2)
    return (
        f"M{x0:.1f},{y0:.1f} C{x0 + bend:.1f},{y0:.1f} {x1 - bend:.1f},{y1:.1f} {x1:.1f},{y1:.1f}"
    )
