"""The templates of the flows that fires start: placeholders rendered, tricks left as text,
problems found. No database."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from app.schedules.templates import TEMPLATE_VARIABLES, render, template_problems

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> datetime:
    """A time in UTC, written without its zone."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


VARIABLES: dict[str, datetime | str] = {
    "fireTime": at("2026-03-29T01:00"),
    "fireTimeLocal": at("2026-03-29T01:00").astimezone(BERLIN),
    "scheduleId": "s-1",
    "scheduleName": "nightly",
}


def test_render_replaces_placeholders_in_strings_at_any_depth() -> None:
    template = {
        "day": "{{fireTime:%Y-%m-%d}}",
        "at": "{{fireTime}}",
        "local": "{{fireTimeLocal:%H:%M %Z}} ({{ fireTimeLocal }})",
        "items": [
            "{{scheduleId}}",
            3,
            2.5,
            None,
            True,
            {"{{scheduleName}}": "name={{scheduleName}}!"},
        ],
    }
    assert render(template, VARIABLES) == {
        "day": "2026-03-29",
        "at": "2026-03-29T01:00:00+00:00",
        "local": "03:00 CEST (2026-03-29T03:00:00+02:00)",
        "items": ["s-1", 3, 2.5, None, True, {"{{scheduleName}}": "name=nightly!"}],
    }
    assert template["at"] == "{{fireTime}}"  # the template itself is left as it was
    assert render("{{fireTime:%s}}", VARIABLES) == "1774746000"
    assert render(42, VARIABLES) == 42
    assert set(TEMPLATE_VARIABLES) == {"fireTime", "fireTimeLocal", "scheduleId", "scheduleName"}


def test_a_lone_placeholder_still_renders_to_a_string() -> None:
    assert render("{{fireTime}}", VARIABLES) == "2026-03-29T01:00:00+00:00"
    assert render(["{{scheduleId}}"], VARIABLES) == ["s-1"]


@pytest.mark.parametrize(
    "text",
    [
        "{fireTime.__class__}",
        "{fireTime.__class__.__mro__[1].__subclasses__()}",
        "{0}, {scheduleId!r}, %s, %(scheduleId)s, ${scheduleId}",
        "{{fireTime:%Y}.__class__}}",
        "{{ unclosed",
    ],
)
def test_format_string_tricks_are_plain_text(text: str) -> None:
    assert template_problems(text) == []
    assert render(text, VARIABLES) == text


def test_values_are_not_rendered_again() -> None:
    sneaky = {**VARIABLES, "scheduleName": "{{scheduleId}} {fireTime.__class__}"}
    assert render("{{scheduleName}}", sneaky) == "{{scheduleId}} {fireTime.__class__}"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{fire_time}}", "$: unknown variable 'fire_time'"),
        ("{{fireTime.__class__}}", "$: unknown variable 'fireTime.__class__'"),
        ("{{}}", "$: unknown variable ''"),
        ("{{scheduleId:%Y}}", "$: scheduleId is text and takes no format"),
        ("{{fireTime:}}", "$: empty format"),
        ("{{fireTime:\ud800}}", "$: bad date format"),
        ({"a": ["ok {{scheduleId}}", {"b": "{{nope}}"}]}, "$.a[1].b: unknown variable 'nope'"),
    ],
)
def test_template_problems_are_found_and_render_refuses_them(
    template: object, problem: str
) -> None:
    problems = template_problems(template)
    assert len(problems) == 1
    assert problems[0].startswith(problem)
    with pytest.raises(ValueError, match=r"unknown|format"):
        render(template, VARIABLES)


def test_render_needs_every_variable_it_uses() -> None:
    assert render("{{scheduleId}}", {"scheduleId": "s-1"}) == "s-1"
    with pytest.raises(ValueError, match="fireTime"):
        render("{{fireTime}}", {"scheduleId": "s-1"})
    with pytest.raises(ValueError, match="fireTime"):
        render("{{fireTime:%Y}}", {"fireTime": "2026"})
