"""The templates of the flows that fires start: placeholders rendered, tricks left as text,
problems found. No database."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flowlog.schedules.templates import (
    ANY_TIME,
    DIRECTIVES,
    ISO_LONGEST,
    TEMPLATE_VARIABLES,
    render,
    template_problems,
)

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


# Directives: a fixed list, each plain and bounded


def moments() -> list[datetime]:
    """Fire times across the years schedules fire in, in zones with odd offsets and long
    abbreviations: the first and last days of years, leap days, and a spread between."""
    spread = timedelta(days=(9000 - 1970) * 365) / 400
    days = [datetime(1970, 1, 1, tzinfo=UTC) + d * spread + timedelta(days=d % 7, seconds=d * 4931)
            for d in range(400)]  # fmt: skip
    days += [
        datetime(y, m, d, 23, 59, 59, 999_999, tzinfo=UTC)
        for y in (1970, 1999, 2000, 2024, 2100, 8999)
        for m, d in ((1, 1), (2, 28), (12, 31))
    ]
    zones = [UTC, BERLIN, ZoneInfo("America/St_Johns"), ZoneInfo("Asia/Kathmandu"),
             ZoneInfo("Pacific/Chatham"), ZoneInfo("America/Sao_Paulo")]  # fmt: skip
    return [day.astimezone(zone) for day in days for zone in zones]


@pytest.mark.parametrize("letter", sorted(set(DIRECTIVES) - {"s"}))
def test_each_directive_renders_as_strftime_and_never_beyond_its_longest(letter: str) -> None:
    longest = DIRECTIVES[letter].longest
    for moment in moments():
        text = render(f"{{{{fireTime:%{letter}}}}}", {"fireTime": moment})
        assert text == moment.strftime(f"%{letter}"), moment
        assert len(text) <= longest, (moment, text)
    assert render(f"{{{{fireTime:%{letter}}}}}", {"fireTime": ANY_TIME}) == "0" * longest


def test_seconds_since_the_epoch_and_offsets_with_seconds() -> None:
    for moment in moments():
        seconds = calendar.timegm(moment.utctimetuple())  # exact: a float rounds .999999 up
        assert render("{{fireTime:%s}}", {"fireTime": moment}) == str(seconds)
    monrovia = datetime(1971, 6, 1, tzinfo=UTC).astimezone(ZoneInfo("Africa/Monrovia"))
    assert render("{{fireTime:%z}}", {"fireTime": monrovia}) == "-004430"
    assert len("-004430") == DIRECTIVES["z"].longest
    last = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert len(render("{{fireTime:%s}}", {"fireTime": last})) == DIRECTIVES["s"].longest


def test_the_longest_rendering_is_as_long_as_any() -> None:
    template = "a-{{fireTime:%A %d %B %Y}}-{{fireTimeLocal}}-{{ scheduleId }}-%%{{fireTime:%%}}"
    longest = render(template, {"fireTime": ANY_TIME, "fireTimeLocal": ANY_TIME,
                                "scheduleId": "s-1"})  # fmt: skip
    assert longest == f"a-000000000 00 000000000 0000-{'0' * ISO_LONGEST}-s-1-%%0"
    for moment in moments():
        variables = {"fireTime": moment, "fireTimeLocal": moment, "scheduleId": "s-1"}
        assert len(render(template, variables)) <= len(longest)


@pytest.mark.parametrize(
    "directive", ["%-d", "%_H", "%0Y", "%1000Y", "%Ey", "%EY", "%Od", "%#d", "% d", "%^a", "%c",
                  "%x", "%X", "%Q", "%n", "%+", "%"],
)  # fmt: skip
def test_directives_with_flags_widths_modifiers_or_off_the_list_are_refused(
    directive: str,
) -> None:
    template = {"night": f"backup {{{{fireTimeLocal:%Y{directive}}}}}"}
    problems = template_problems(template)
    assert len(problems) == 1
    assert problems[0].startswith(f"$.night: {directive!r} is not an allowed directive")
    assert f"{{{{fireTimeLocal:%Y{directive}}}}}" in problems[0]  # the placeholder named
    with pytest.raises(ValueError, match="not an allowed directive"):
        render(template, VARIABLES)
