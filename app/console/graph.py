"""A definition drawn as a graph: where each node and edge goes in the SVG. Pure.

The input is a definition as recorded in the log (``WorkflowDefinition.describe()``, the
``definition`` column of ``workflow_definitions``): nodes by key, each with a success and a
fail transition. Definitions are acyclic (the engine refuses loops), so nodes are laid out in
layers by their longest distance from ``start``; the success path from ``start`` runs along
the top row, failure handlers and other branches below it. Success edges end at the next node
or at the end marker; fail edges are drawn apart (dashed, labelled); a ``pause`` on failure
is a note under its node, and a failure that ends the flow draws no edge (the node table says
so), which keeps small definitions readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flowlog.workflow.definition import PAUSE

END = ""
NODE_WIDTH = 168
NODE_HEIGHT = 48
LAYER_GAP = 64
ROW_GAP = 40
MARGIN = 24
START_RADIUS = 9
EdgeKind = Literal["success", "fail"]


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

    @property
    def cx(self) -> float:
        return self.x + NODE_WIDTH / 2

    @property
    def cy(self) -> float:
        return self.y + NODE_HEIGHT / 2


@dataclass(frozen=True, slots=True)
class GraphEdge:
    source: str
    """A node key, or ``""`` for the start marker."""
    target: str
    """A node key, or ``""`` for the end marker."""
    kind: EdgeKind
    path: str
    """SVG path data."""
    label_x: float
    label_y: float


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


def layout(definition: Mapping[str, Any]) -> Graph:
    """Positions of the nodes and edges of ``definition`` (as ``describe()`` writes it)."""
    nodes: Mapping[str, Mapping[str, Any]] = definition.get("nodes", {})
    layers = _layers(nodes)
    spine = _success_path(nodes)
    rows: dict[str, int] = {key: 0 for key in spine}
    taken: dict[tuple[int, int], str] = {(layers[key], 0): key for key in spine}
    for key in sorted(layers, key=lambda k: (layers[k], _discovery(nodes)[k])):
        if key in rows:
            continue
        row = 1
        while (layers[key], row) in taken:
            row += 1
        rows[key] = row
        taken[(layers[key], row)] = key
    placed = tuple(
        GraphNode(
            key=key,
            name=str(nodes[key].get("name", key)),
            kind=str(nodes[key].get("kind", "sync")),
            layer=layers[key],
            row=rows[key],
            x=MARGIN + 2 * START_RADIUS + LAYER_GAP / 2 + layers[key] * (NODE_WIDTH + LAYER_GAP),
            y=MARGIN + rows[key] * (NODE_HEIGHT + ROW_GAP),
            pauses_on_failure=nodes[key].get("fail") == PAUSE,
        )
        for key in sorted(layers, key=lambda k: (layers[k], rows[k]))
    )
    by_key = {n.key: n for n in placed}
    last_layer = max((n.layer for n in placed), default=-1)
    end_x = MARGIN + 2 * START_RADIUS + LAYER_GAP / 2 + (last_layer + 1) * (NODE_WIDTH + LAYER_GAP)
    end = (end_x + START_RADIUS, MARGIN + NODE_HEIGHT / 2)
    start = (MARGIN + START_RADIUS, MARGIN + NODE_HEIGHT / 2)
    edges: list[GraphEdge] = []
    if "start" in by_key:
        first = by_key["start"]
        edges.append(_edge("", "start", "success", (start[0] + START_RADIUS, start[1]), first))
    for node in placed:
        spec = nodes[node.key]
        success = str(spec.get("success", END))
        if success in by_key:
            edges.append(_between(node, by_key[success], "success"))
        elif success == END:
            edges.append(_to_end(node, end))
        fail = str(spec.get("fail", END))
        if fail in by_key:
            edges.append(_between(node, by_key[fail], "fail"))
    rows_used = max((n.row for n in placed), default=0) + 1
    height = 2 * MARGIN + rows_used * NODE_HEIGHT + (rows_used - 1) * ROW_GAP + 14
    width = end[0] + START_RADIUS + MARGIN
    return Graph(placed, tuple(edges), width, height, start, end)


def _layers(nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Each node reachable from ``start``: its longest distance from it (a DAG, so finite;
    a cycle, which the engine refuses, would only stop growing here)."""
    order = _discovery(nodes)
    reachable = [key for key in order if key in nodes]
    indegree = dict.fromkeys(reachable, 0)
    for key in reachable:
        for target in _targets(nodes[key]):
            if target in indegree:
                indegree[target] += 1
    layers = dict.fromkeys(reachable, 0)
    ready = [key for key in reachable if indegree[key] == 0]
    while ready:  # Kahn's topological order: each node after every node that leads to it
        key = ready.pop(0)
        for target in _targets(nodes[key]):
            if target in indegree:
                layers[target] = max(layers[target], layers[key] + 1)
                indegree[target] -= 1
                if indegree[target] == 0:
                    ready.append(target)
    return layers


def _targets(spec: Mapping[str, Any]) -> list[str]:
    return [str(spec.get("success", END)), str(spec.get("fail", END))]


def _success_path(nodes: Mapping[str, Mapping[str, Any]]) -> list[str]:
    path: list[str] = []
    key = "start"
    while key in nodes and key not in path:
        path.append(key)
        key = str(nodes[key].get("success", END))
    return path


def _discovery(nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """The order a breadth-first walk from ``start`` meets the nodes (success first)."""
    order: dict[str, int] = {}
    queue = ["start"] if "start" in nodes else []
    while queue:
        key = queue.pop(0)
        if key in order:
            continue
        order[key] = len(order)
        queue += [t for t in _targets(nodes[key]) if t in nodes]
    for key in sorted(nodes):
        order.setdefault(key, len(order))
    return order


def _between(source: GraphNode, target: GraphNode, kind: EdgeKind) -> GraphEdge:
    if kind == "fail" and target.row > source.row:
        # Down to a handler below: leave from the bottom, clear of the success path along
        # the top, and enter the handler from the side that faces the source.
        x0, y0 = source.cx, source.y + NODE_HEIGHT
        x1 = target.x if target.cx >= x0 else target.x + NODE_WIDTH
        y1 = target.cy
        path = f"M{x0:.1f},{y0:.1f} C{x0:.1f},{y1:.1f} {x0:.1f},{y1:.1f} {x1:.1f},{y1:.1f}"
        return GraphEdge(source.key, target.key, kind, path, x0 + 5, y0 + 14)
    return _edge(source.key, target.key, kind, (source.x + NODE_WIDTH, source.cy), target)


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


def _to_end(source: GraphNode, end: tuple[float, float]) -> GraphEdge:
    x0, y0 = source.x + NODE_WIDTH, source.cy
    x1, y1 = end[0] - START_RADIUS, end[1]
    # A handler's path ends too: it curves up to the end marker.
    path = f"M{x0:.1f},{y0:.1f} L{x1:.1f},{y1:.1f}" if source.row == 0 else _curve(x0, y0, x1, y1)
    return GraphEdge(source.key, END, "success", path, (x0 + x1) / 2, (y0 + y1) / 2 - 6)


def _curve(x0: float, y0: float, x1: float, y1: float) -> str:
    """A left-to-right S curve from (x0, y0) to (x1, y1)."""
    bend = max(24.0, (x1 - x0) / 2)
    return (
        f"M{x0:.1f},{y0:.1f} C{x0 + bend:.1f},{y0:.1f} {x1 - bend:.1f},{y1:.1f} {x1:.1f},{y1:.1f}"
    )
