"""The templates of the flows that schedules' fires start: ``{{name}}`` and
``{{name:format}}`` placeholders in a bizId and in the strings of a context. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final, TypeVar, cast

from app.schedules.timing import quoted

T = TypeVar("T")

TEMPLATE_VARIABLES: Final[Mapping[str, type[datetime] | type[str]]] = MappingProxyType(
    {
        "fireTime": datetime,  # nominal, in UTC
        "fireTimeLocal": datetime,  # nominal, in the schedule's time zone
        "scheduleId": str,
        "scheduleName": str,
    }
)
# `{{name}}` or `{{name:strftime format}}`. Replaced through this expression, never str.format or
# eval, so that a template reaches these values and nothing else.
_PLACEHOLDER: Final = re.compile(r"\{\{([^{}:]*)(?::([^{}]*))?\}\}")
_SAMPLE_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)


def template_problems(template: object) -> list[str]:
    """What is wrong with the placeholders of a template (a JSON value), in words for people."""
    return list(_template_problems(template, "$"))


def render(template: T, variables: Mapping[str, datetime | str]) -> T:
    """The template with its placeholders replaced in every string at any depth (dict keys are
    left alone); datetimes are ISO 8601 unless a format is given.

    ValueError when template_problems finds any, or `variables` lacks one that the template uses.
    """
    problems = template_problems(template)
    if problems:
        raise ValueError("; ".join(problems))
    return cast(T, _render(template, variables))


def _render(value: object, variables: Mapping[str, datetime | str]) -> object:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda match: _placeholder_value(match, variables), value)
    if isinstance(value, dict):
        return {key: _render(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, variables) for item in value]
    return value


def _template_problems(value: object, path: str) -> Iterator[str]:
    if isinstance(value, str):
        for match in _PLACEHOLDER.finditer(value):
            problem = _placeholder_problem(match)
            if problem is not None:
                yield f"{path}: {problem}"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _template_problems(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _template_problems(item, f"{path}[{index}]")


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
    try:
        _SAMPLE_TIME.strftime(form)
    except (ValueError, UnicodeError):  # some platforms reject unknown directives; surrogates
        return f"bad date format in {quoted(match[0])}"
    return None


def _placeholder_value(match: re.Match[str], variables: Mapping[str, datetime | str]) -> str:
    name, form = match[1].strip(), match[2]
    kind, value = TEMPLATE_VARIABLES[name], variables.get(name)
    if kind is datetime and isinstance(value, datetime):
        return value.isoformat() if form is None else value.strftime(form)
    if kind is str and isinstance(value, str):
        return value
    raise ValueError(f"the template variable {name} needs a {kind.__name__} value")
