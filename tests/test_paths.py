"""``{{root.path}}`` placeholders (app/paths.py): what event rules render from an event."""

from __future__ import annotations

import time

import pytest

from flowlog.paths import (
    MAX_DEPTH,
    NotRendered,
    PathMissing,
    TooLarge,
    lookup,
    path_problems,
    placeholders,
    render,
)

ROOTS = {"data": "the event's data", "id": "the event's id"}
VALUES = {"data": {"n": 3, "name": "c-1", "items": [{"id": "a"}, {"id": "b"}], "ok": True,
                   "none": None, "obj": {"x": 1}}, "id": "e-1"}  # fmt: skip


def test_a_whole_placeholder_keeps_its_values_type() -> None:
    assert render("{{data.n}}", VALUES) == 3
    assert render("{{ data.ok }}", VALUES) is True
    assert render("{{data.none}}", VALUES) is None
    assert render("{{data.obj}}", VALUES) == {"x": 1}
    assert render("{{data.items.1.id}}", VALUES) == "b"


def test_placeholders_inside_text_become_text() -> None:
    assert render("c={{data.name}} n={{data.n}} o={{data.obj}}", VALUES) == 'c=c-1 n=3 o={"x":1}'
    assert render("no placeholder", VALUES) == "no placeholder"


def test_templates_render_at_any_depth_and_leave_keys_and_other_values_alone() -> None:
    template = {"{{data.n}}": ["{{id}}", {"deep": "{{data.name}}"}], "k": 5, "b": False}
    assert render(template, VALUES) == {"{{data.n}}": ["e-1", {"deep": "c-1"}], "k": 5, "b": False}


@pytest.mark.parametrize(
    "path", ["data.missing", "data.items.2", "data.items.x", "data.n.deeper", "nothing"]
)
def test_a_path_to_nothing_is_missing(path: str) -> None:
    with pytest.raises(PathMissing, match="names nothing"):
        render("{{" + path + "}}", VALUES)
    with pytest.raises(PathMissing):
        lookup(VALUES, path)


def test_path_problems_name_bad_paths_and_unknown_roots() -> None:
    assert path_problems({"a": "{{data.x}}", "b": ["{{id}}"]}, ROOTS) == []
    problems = path_problems("{{}} {{data..x}} {{data.a b}} {{secret.x}} {{data.$x}}", ROOTS)
    assert len(problems) == 5
    assert "starts with an unknown name" in problems[3]
    assert all("is no path" in p for p in problems[:3] + problems[4:])
    deep = "{{" + ".".join(["data"] + ["a"] * MAX_DEPTH) + "}}"
    (problem,) = path_problems(deep, ROOTS)
    assert f"at most {MAX_DEPTH}" in problem
    assert path_problems("{{" + ".".join(["data"] + ["a"] * (MAX_DEPTH - 1)) + "}}", ROOTS) == []


def test_each_placeholder_is_reported_once() -> None:
    assert list(placeholders(["{{a.b}}", {"k": "{{a.b}} {{c}}"}])) == ["a.b", "a.b", "c"]
    assert len(path_problems(["{{x}}", "{{x}}"], ROOTS)) == 1


def test_a_line_of_openings_is_read_in_one_pass() -> None:
    """Half a million ``{{`` without a closing: plain text, found at once (a lazy regular
    expression took time quadratic in the line's length: hours for a 1 MB template)."""
    template = {"k": "{{" * 500_000, "j": "{{" * 100_000 + "}}"}
    started = time.process_time()
    problems = path_problems(template, {"data": "the event's data"})
    assert len(problems) == 1
    assert "no path" in problems[0]
    assert time.process_time() - started < 5  # quadratic: minutes; one pass: milliseconds


def test_a_rendering_past_its_budget_is_refused_before_it_is_made() -> None:
    """A small template that repeats a large value must not make gigabytes."""
    template = ["a{{data}}"] * 1000
    with pytest.raises(TooLarge):
        render(template, {"data": "x" * 50_000})
    with pytest.raises(TooLarge):
        render({"whole": "{{data}}"}, {"data": ["x" * 100] * 100}, budget=1000)
    assert render(["{{data}}"] * 3, {"data": "x"}, budget=3 * len('"x"')) == ["x"] * 3
    assert isinstance(TooLarge("x"), NotRendered)
    assert isinstance(PathMissing("x"), NotRendered)
