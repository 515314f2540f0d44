"""The definition graph's layout: layers, rows, edges."""

from __future__ import annotations

from flowlog.console.graph import (
    CHILD_HEIGHT,
    CHILD_WIDTH,
    NODE_HEIGHT,
    NODE_WIDTH,
    detail,
    layout,
)
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


def test_a_definition_without_children_is_drawn_as_before_children_existed() -> None:
    """The restore's layout, to the pixel, as the console drew it before nodes could run
    children: every node 168x48, rows 48 high, the same edges."""
    graph = layout(DEFINITIONS[1].describe())
    assert [(n.key, n.x, n.y, n.width, n.height) for n in graph.nodes] == [
        ("start", 74.0, 24.0, 168, 48), ("approval", 306.0, 24.0, 168, 48),
        ("wipe", 538.0, 24.0, 168, 48), ("abandon", 538.0, 112.0, 168, 48),
        ("load", 770.0, 24.0, 168, 48),
    ]  # fmt: skip
    assert [(e.source, e.target, e.path) for e in graph.edges] == [
        ("", "start", "M42.0,48.0 C66.0,48.0 50.0,48.0 74.0,48.0"),
        ("start", "approval", "M242.0,48.0 C274.0,48.0 274.0,48.0 306.0,48.0"),
        ("start", "abandon", "M158.0,72.0 C158.0,136.0 158.0,136.0 538.0,136.0"),
        ("approval", "wipe", "M474.0,48.0 C506.0,48.0 506.0,48.0 538.0,48.0"),
        ("approval", "abandon", "M390.0,72.0 C390.0,136.0 390.0,136.0 538.0,136.0"),
        ("wipe", "load", "M706.0,48.0 C738.0,48.0 738.0,48.0 770.0,48.0"),
        ("abandon", "", "M706.0,136.0 C854.0,136.0 854.0,48.0 1002.0,48.0"),
        ("load", "", "M938.0,48.0 L1002.0,48.0"),
    ]
    assert (graph.width, graph.height, graph.start, graph.end) == (
        1044.0,
        198,
        (33, 48.0),
        (1011.0, 48.0),
    )
    assert not graph.forks
    assert all(not n.detail and n.branch is None for n in graph.nodes)


FLEET = DEFINITIONS[2].describe()


def test_a_parallel_node_forks_to_its_branches_and_they_join_into_its_success() -> None:
    graph = layout(FLEET)
    assert graph.forks
    edges = sorted((e.source, e.target, e.kind, e.label) for e in graph.edges)
    assert edges == [
        ("", "start", "success", ""),
        ("checks", "report", "fork", "report"),
        ("checks", "verify", "fork", "verify"),
        ("done", "", "success", ""),
        ("report", "done", "join", ""),
        ("start", "checks", "success", ""),
        ("verify", "done", "join", ""),
    ]  # the parallel node's own success is drawn as the join, not as an edge of its own
    checks, done = graph.node("checks"), graph.node("done")
    branches = {key: graph.node(key) for key in ("verify", "report")}
    assert {key: n.branch for key, n in branches.items()} == {"verify": "verify",
                                                               "report": "report"}  # fmt: skip
    assert {n.layer for n in branches.values()} == {checks.layer + 1}
    assert done.layer == checks.layer + 2  # after every branch
    assert done.row == checks.row == 0
    # One branch along the top with the success path, the other below it.
    assert sorted(n.row for n in branches.values()) == [0, 1]
    # Each fork's label (its branch) stands just before the entry it leads to.
    for edge in (e for e in graph.edges if e.kind == "fork"):
        entry = graph.node(edge.target)
        assert edge.label_x < entry.x
        assert entry.y < edge.label_y < entry.y + entry.height


def test_branches_are_drawn_in_the_order_their_children_say() -> None:
    """Read back from PostgreSQL (jsonb) a definition lists branches by name; the flow's
    children know the declared order, and the top row takes the first branch."""
    for first, second in (("verify", "report"), ("report", "verify")):
        graph = layout(FLEET, {"checks": [first, second]})
        assert (graph.node(first).row, graph.node(second).row) == (0, 1)


def test_nodes_that_run_children_say_what_they_run_and_have_room_for_counts() -> None:
    graph = layout(FLEET)
    each, checks, verify = graph.node("start"), graph.node("checks"), graph.node("verify")
    assert each.detail == "map: backup over clusters"
    assert checks.detail == "parallel: 2 branches, join all"
    assert verify.detail == ""
    assert (each.width, each.height) == (CHILD_WIDTH, CHILD_HEIGHT)
    assert (verify.width, verify.height) == (NODE_WIDTH, NODE_HEIGHT)
    assert verify.cy == each.cy  # a smaller node sits in the middle of its row
    # A layer is as wide as its widest node: the next one starts after it, nothing overlaps.
    assert checks.x >= each.x + each.width + 64
    assert graph.end[0] > max(n.x + n.width for n in graph.nodes)
    assert graph.height > max(n.y + n.height for n in graph.nodes)
    one = layout({"name": "one", "nodes": {
        "start": {"name": "backUpOne", "kind": "subflow", "flow": "backup", "success": "done"},
        "done": _node("done"),
    }})  # fmt: skip
    assert one.node("start").detail == "sub-flow: backup"
    at_least = {"name": "p", "kind": "parallel", "branches": {"a": "a", "b": "b", "c": "c"},
                "join": 2}  # fmt: skip
    assert detail(at_least) == "parallel: 3 branches, join 2 of 3"


def test_a_branch_ending_a_flow_joins_at_the_end_and_nested_branches_join_outward() -> None:
    nodes = {
        "start": {"name": "outer", "kind": "parallel", "branches": {"x": "x1", "y": "inner"}},
        "x1": _node("x1", success="x2"),
        "x2": _node("x2"),
        "inner": {"name": "inner", "kind": "parallel", "branches": {"p": "p1", "q": "q1"}},
        "p1": _node("p1"),
        "q1": _node("q1", fail="q2"),
        "q2": _node("q2"),
    }
    graph = layout({"name": "nested", "nodes": nodes})
    joins = sorted((e.source, e.target) for e in graph.edges if e.kind == "join")
    # The outer node ends the flow: its branches join at the end marker, and so do the
    # inner node's (its own success is the end of the outer branch it stands on); a
    # handler's end ends its branch too.
    assert joins == [("p1", ""), ("q1", ""), ("q2", ""), ("x2", "")]
    forks = sorted((e.source, e.target, e.label) for e in graph.edges if e.kind == "fork")
    assert forks == [("inner", "p1", "p"), ("inner", "q1", "q"), ("start", "inner", "y"),
                     ("start", "x1", "x")]  # fmt: skip
    assert graph.node("x2").row == graph.node("x1").row  # a branch keeps to its row
    assert len({(n.layer, n.row) for n in graph.nodes}) == len(graph.nodes)


def test_a_node_offered_on_a_queue_names_it() -> None:
    nodes = {"start": {**_node("render", success="b"), "queue": "remote"}, "b": _node("b")}
    graph = layout({"name": "q", "nodes": nodes})
    assert graph.node("start").queue == "remote"
    assert graph.node("b").queue is None
    # Its note goes above it (11 px text 6 px over it): inside the drawing.
    assert graph.node("start").y - 6 - 11 >= 0
