"""The templates of the flows that schedules' fires start: ``{{name}}`` and
``{{name:format}}`` placeholders in a bizId and in the strings of a context. Pure.

A format is text and plain ``%X`` directives from a fixed list (``DIRECTIVES``), rendered here
rather than by the C library's strftime: no flag, width or locale modifier (``%-d``,
``%1000Y``, ``%Ey``) can make a placeholder render more than its directive's ``longest``, and
every process renders the same text whatever its locale. So the longest a template can render
is known before any fire (``ANY_TIME``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final, TypeVar, cast

from flowlog.schedules.timing import quoted
from flowlog.storable import storable_text

T = TypeVar("T")

TEMPLATE_VARIABLES: Final[Mapping[str, type[datetime] | type[str]]] = MappingProxyType(
    {
        "fireTime": datetime,  # nominal, in UTC
        "fireTimeLocal": datetime,  # nominal, in the schedule's time zone
        "scheduleId": str,
        "scheduleName": str,
    }
)
# `{{name}}` or `{{name:format}}`. Replaced through this expression, never str.format or eval,
# so that a template reaches these values and nothing else.
_PLACEHOLDER: Final = re.compile(r"\{\{([^{}:]*)(?::([^{}]*))?\}\}")
# A directive as the C library would read it: `%`, any flags and width, an E or O modifier,
# a conversion letter. Anything but `%` and one letter of DIRECTIVES is refused.
_DIRECTIVE: Final = re.compile(r"%[^A-Za-z%]*[EO]?[A-Za-z%]?")


class AnyTime:
    """The value of a time variable that stands for every fire time: each of its placeholders
    renders as many characters as the longest it can (all ``0``), so that a template rendered
    with it is as long as the template can ever render."""


ANY_TIME: Final = AnyTime()
Variables = Mapping[str, datetime | str | AnyTime]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND: Final = timedelta(seconds=1)
_DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
ISO_LONGEST: Final = len("9999-12-31T23:59:59.999999+23:59:59")
"""The longest time in ISO 8601 (``{{fireTime}}``): microseconds, an offset with seconds."""


def _offset(moment: datetime) -> str:
    """``%z``: +HHMM, or +HHMMSS for the odd zone whose offset has seconds (Monrovia until
    1972)."""
    offset = moment.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes, seconds = divmod(int(abs(offset).total_seconds()), 60)
    text = f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    return text + f"{seconds:02d}" if seconds else text


def _week(moment: datetime, day_of_week: int) -> str:
    """``%U``, ``%W``: the week of the year, its first week from its first Sunday or Monday
    (``day_of_week`` counts from that day, from 0): the days before are week 00."""
    return f"{(moment.timetuple().tm_yday + 6 - day_of_week) // 7:02d}"


@dataclass(frozen=True, slots=True)
class Directive:
    longest: int
    """The most characters it renders, for any fire time (1970 to 9999) in any zone."""
    render: Callable[[datetime], str]


DIRECTIVES: Final[Mapping[str, Directive]] = MappingProxyType(
    {
        "Y": Directive(4, lambda t: f"{t.year:04d}"),  # year
        "y": Directive(2, lambda t: f"{t.year % 100:02d}"),  # year in the century
        "m": Directive(2, lambda t: f"{t.month:02d}"),  # month 01-12
        "d": Directive(2, lambda t: f"{t.day:02d}"),  # day of the month 01-31
        "j": Directive(3, lambda t: f"{t.timetuple().tm_yday:03d}"),  # day of the year 001-366
        "H": Directive(2, lambda t: f"{t.hour:02d}"),  # hour 00-23
        "I": Directive(2, lambda t: f"{t.hour % 12 or 12:02d}"),  # hour 01-12
        "p": Directive(2, lambda t: "AM" if t.hour < 12 else "PM"),  # AM or PM
        "M": Directive(2, lambda t: f"{t.minute:02d}"),  # minute
        "S": Directive(2, lambda t: f"{t.second:02d}"),  # second
        "f": Directive(6, lambda t: f"{t.microsecond:06d}"),  # microsecond
        "a": Directive(3, lambda t: _DAYS[t.weekday()][:3]),  # weekday, Mon
        "A": Directive(9, lambda t: _DAYS[t.weekday()]),  # weekday, Monday
        "b": Directive(3, lambda t: _MONTHS[t.month - 1][:3]),  # month, Jan
        "B": Directive(9, lambda t: _MONTHS[t.month - 1]),  # month, January
        "u": Directive(1, lambda t: str(t.isoweekday())),  # weekday 1-7, Monday 1
        "w": Directive(1, lambda t: str(t.isoweekday() % 7)),  # weekday 0-6, Sunday 0
        "U": Directive(2, lambda t: _week(t, t.isoweekday() % 7)),  # week 00-53, from Sunday
        "W": Directive(2, lambda t: _week(t, t.weekday())),  # week 00-53, from Monday
        "G": Directive(4, lambda t: f"{t.isocalendar().year:04d}"),  # ISO 8601 year
        "V": Directive(2, lambda t: f"{t.isocalendar().week:02d}"),  # ISO 8601 week 01-53
        "z": Directive(7, _offset),  # UTC offset, +0100
        # The tz database's abbreviations have 3 to 6 characters (its theory.html).
        "Z": Directive(6, lambda t: t.tzname() or ""),  # zone abbreviation, CET
        "s": Directive(12, lambda t: str((t - _EPOCH) // _SECOND)),  # seconds since 1970
        "F": Directive(10, lambda t: f"{t.year:04d}-{t.month:02d}-{t.day:02d}"),  # %Y-%m-%d
        "T": Directive(8, lambda t: f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}"),  # %H:%M:%S
        "%": Directive(1, lambda t: "%"),  # a % sign
    }
)
"""The directives a format may use, each plain (``%Y``: no flag, width or E/O modifier), with
the C locale's text (English names)."""
_ALLOWED: Final = " ".join(f"%{letter}" for letter in DIRECTIVES)


def template_problems(template: object) -> list[str]:
    """What is wrong with the placeholders of a template (a JSON value), in words for people."""
    return list(_template_problems(template, "$"))


def render(template: T, variables: Variables) -> T:
    """The template with its placeholders replaced in every string at any depth (dict keys are
    left alone); times are ISO 8601 unless a format is given.

    ValueError when template_problems finds any, or `variables` lacks one that the template uses.
    """
    problems = template_problems(template)
    if problems:
        raise ValueError("; ".join(problems))
    return cast(T, _render(template, variables))


def _render(value: object, variables: Variables, done: dict[str, str] | None = None) -> object:
    # `done`: each placeholder rendered once (a context may repeat one thousands of times).
    done = {} if done is None else done
    if isinstance(value, str):

        def replaced(match: re.Match[str]) -> str:
            text = done.get(match[0])
            if text is None:
                text = done[match[0]] = _placeholder_value(match, variables)
            return text

        return _PLACEHOLDER.sub(replaced, value)
    if isinstance(value, dict):
        return {key: _render(item, variables, done) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, variables, done) for item in value]
    return value


def _template_problems(value: object, path: str, seen: set[str] | None = None) -> Iterator[str]:
    # `seen`: each placeholder checked (and its problem told) once.
    seen = set() if seen is None else seen
    if isinstance(value, str):
        for match in _PLACEHOLDER.finditer(value):
            if match[0] in seen:
                continue
            seen.add(match[0])
            problem = _placeholder_problem(match)
            if problem is not None:
                yield f"{path}: {problem}"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _template_problems(item, f"{path}.{key}", seen)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _template_problems(item, f"{path}[{index}]", seen)


def _placeholder_problem(match: re.Match[str]) -> str | None:
    name, form = match[1].strip(), match[2]
    kind = TEMPLATE_VARIABLES.get(name)
    if kind is None:
        known = ", ".join(TEMPLATE_VARIABLES)
        return f"unknown variable {quoted(name)} in {quoted(match[0])} (known: {known})"
    if form is None:
        return None
    if kind is not datetime:
        return f"{name} is text and takes no format, in {quoted(match[0])}"
    if not form:
        return f"empty format in {quoted(match[0])}"
    if not storable_text(form):
        return f"bad date format in {quoted(match[0])}"
    for directive in _DIRECTIVE.findall(form):
        if directive[1:] not in DIRECTIVES:
            return (
                f"{quoted(directive)} is not an allowed directive, in {quoted(match[0])} "
                f"(allowed: {_ALLOWED}; no flags, widths or E/O modifiers; %% for a % sign)"
            )
    return None


def _placeholder_value(match: re.Match[str], variables: Variables) -> str:
    name, form = match[1].strip(), match[2]
    kind, value = TEMPLATE_VARIABLES[name], variables.get(name)
    if kind is datetime and isinstance(value, datetime | AnyTime):
        return _time(value, form)
    if kind is str and isinstance(value, str):
        return value
    raise ValueError(f"the template variable {name} needs a {kind.__name__} value")


def _time(moment: datetime | AnyTime, form: str | None) -> str:
    if form is None:
        return "0" * ISO_LONGEST if isinstance(moment, AnyTime) else moment.isoformat()

    def directive(match: re.Match[str]) -> str:
        chosen = DIRECTIVES[match[0][1:]]  # checked by _placeholder_problem
        return "0" * chosen.longest if isinstance(moment, AnyTime) else chosen.render(moment)

    return _DIRECTIVE.sub(directive, form)
