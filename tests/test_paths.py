"""``{{root.path}}`` placeholders (app/paths.py): what event rules render from an event."""

from __future__ import annotations

import pytest

from flowlog.paths import MAX_DEPTH, PathMissing, lookup, path_problems, placeholders, render

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
