"""The definition graph's layout: layers, rows, edges."""

from __future__ import annotations

from flowlog.console.graph import NODE_HEIGHT, NODE_WIDTH, layout
from flowlog.demo import DEFINITIONS


def _node(name: str, success: str = "", fail: str = "") -> dict[str, str]:
    return {"name": name, "success": success, "fail": fail, "kind": "sync"}


def test_the_success_path_runs_along_the_top_and_handlers_below() -> None:
    graph = layout(DEFINITIONS[0].describe())
    top = sorted((n for n in graph.nodes if n.row == 0), key=lambda n: n.layer)
    assert [n.name for n in top] == ["backup", "upload", "updateBackupRecord"]
    handler = graph.node("fail")
    assert handler.row == 1
    assert handler.layer == 3  # after the last node that fails to it
    kinds = sorted((e.source, e.target, e.kind) for e in graph.edges)
    assert kinds == [
        ("", "start", "success"),
        ("backupDone", "fail", "fail"),
        ("backupDone", "uploadDone", "success"),
        ("fail", "", "success"),
        ("start", "backupDone", "success"),
        ("start", "fail", "fail"),
        ("uploadDone", "", "success"),
        ("uploadDone", "fail", "fail"),
    ]
    # Every node inside the drawing, and no two in one place.
    assert len({(n.layer, n.row) for n in graph.nodes}) == len(graph.nodes)
    for n in graph.nodes:
        assert n.x > 0
        assert n.x + NODE_WIDTH < graph.width
        assert n.y > 0
        assert n.y + NODE_HEIGHT < graph.height
    assert graph.end[0] > max(n.x + NODE_WIDTH for n in graph.nodes)


def test_layers_are_the_longest_distance_from_start() -> None:
    nodes = {
        "start": _node("a", success="b", fail="c"),
        "b": _node("b", success="d"),
        "c": _node("c", success="x"),
        "x": _node("x", success="d"),
        "d": _node("d"),
    }
    graph = layout({"name": "diamond", "nodes": nodes})
    layers = {n.key: n.layer for n in graph.nodes}
    assert layers == {"start": 0, "b": 1, "c": 1, "x": 2, "d": 3}


def test_a_pause_on_failure_is_a_note_and_no_edge() -> None:
    nodes = {"start": _node("a", success="b", fail="pause"), "b": _node("b")}
    graph = layout({"name": "p", "nodes": nodes})
    assert graph.node("start").pauses_on_failure
    assert not graph.node("b").pauses_on_failure
    assert all(e.kind == "success" for e in graph.edges)


def test_a_wide_ladder_lays_out_at_once() -> None:
    """Each node succeeds to the next and fails to the one after: 2^n paths from start, so a
    layout that walked paths would never end; a topological order takes linear time."""
    count = 120
    keys = ["start"] + [f"n{i}" for i in range(1, count)]
    nodes = {
        key: _node(
            key,
            success=keys[i + 1] if i + 1 < count else "",
            fail=keys[i + 2] if i + 2 < count else "",
        )
        for i, key in enumerate(keys)
    }
    graph = layout({"name": "ladder", "nodes": nodes})
    assert {n.key: n.layer for n in graph.nodes} == {key: i for i, key in enumerate(keys)}
    assert all(n.row == 0 for n in graph.nodes)
