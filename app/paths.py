"""``{{root.path}}`` placeholders into JSON values: what event rules render from a CloudEvent
(``{{data.clusterId}}``, ``{{source}}``) and what a callback node waiting for an event renders
from its flow's context (``{{context.clusterId}}``). Pure; a leaf.

A string that is exactly one placeholder becomes the value found (any JSON value, its type
kept: a number stays a number, so a match on it compares numbers); placeholders inside longer
text are replaced by their value's text (a string as it is, anything else as compact JSON).
Paths are dotted names and list indexes (``data.items.0.id``), looked up, never evaluated. The
caller checks the rendered value against the limits of what it makes (a flow's create).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Final

import orjson
from pydantic import JsonValue

MAX_DEPTH: Final = 32
"""Segments a path may have."""
MAX_RENDERED: Final = 1024 * 1024
"""Characters a rendering may make, unless the caller says less: a template of a few KB that
repeats a large value must not make gigabytes before anything can measure it."""

_SEGMENT: Final = re.compile(r"[A-Za-z0-9_\-]{1,200}")


class NotRendered(ValueError):
    """A template could not be rendered; the message says why."""


class PathMissing(NotRendered):
    """A placeholder names a value that is not there."""


class TooLarge(NotRendered):
    """The rendering would be longer than its budget."""


def _spans(text: str) -> Iterator[tuple[int, int, str]]:
    """Each placeholder of ``text``: its start, its end and its path. A scan, not a regular
    expression: each ``{{`` is closed by the first ``}}`` after it, in one pass over the text
    (a lazy pattern tried at every ``{{`` of a line of them took time quadratic in its
    length)."""
    at = 0
    while (start := text.find("{{", at)) >= 0:
        end = text.find("}}", start + 2)
        if end < 0:
            return
        yield start, end + 2, text[start + 2 : end].strip()
        at = end + 2


def placeholders(template: JsonValue) -> Iterator[str]:
    """Every placeholder's path in a template (strings at any depth; keys are left alone)."""
    if isinstance(template, str):
        for _, _, path in _spans(template):
            yield path
    elif isinstance(template, dict):
        for item in template.values():
            yield from placeholders(item)
    elif isinstance(template, list):
        for item in template:
            yield from placeholders(item)


def path_problems(template: JsonValue, roots: Mapping[str, str]) -> list[str]:
    """What is wrong with a template's placeholders, in words for people; ``roots`` maps each
    first segment a path may start with to what it means (``{"data": "the event's data"}``)."""
    problems: list[str] = []
    for path in dict.fromkeys(placeholders(template)):
        segments = path.split(".")
        if not path or len(segments) > MAX_DEPTH or not all(map(_SEGMENT.fullmatch, segments)):
            problems.append(
                f"{{{{{path[:80]}}}}} is no path: dotted names and indexes, at most "
                f"{MAX_DEPTH} of them"
            )
        elif segments[0] not in roots:
            known = ", ".join(f"{name} ({meaning})" for name, meaning in roots.items())
            problems.append(f"{{{{{path[:80]}}}}} starts with an unknown name (known: {known})")
    return problems


def lookup(values: Mapping[str, JsonValue], path: str) -> JsonValue:
    """The value at ``path`` (PathMissing when any step is not there)."""
    current: JsonValue = dict(values)
    for segment in path.split("."):
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            raise PathMissing(f"{{{{{path}}}}} names nothing: no {segment!r} there")
    return current


def render(
    template: JsonValue, values: Mapping[str, JsonValue], budget: int = MAX_RENDERED
) -> JsonValue:
    """The template with its placeholders replaced from ``values`` (PathMissing: a value is
    not there; TooLarge: the placeholders would make more than ``budget`` characters). Check
    ``path_problems`` first: a malformed path is rendered as missing."""
    left = [budget]
    try:
        return _render(template, values, left)
    except TooLarge:
        raise TooLarge(f"the placeholders make more than {budget:,} characters") from None


def _render(template: JsonValue, values: Mapping[str, JsonValue], left: list[int]) -> JsonValue:
    if isinstance(template, str):
        spans = list(_spans(template))
        if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(template):
            found = lookup(values, spans[0][2])
            _spend(left, len(orjson.dumps(found)))
            return found
        parts, at = [], 0
        for start, end, path in spans:
            text = _text(lookup(values, path))
            _spend(left, len(text))
            parts += [template[at:start], text]
            at = end
        return "".join([*parts, template[at:]]) if spans else template
    if isinstance(template, dict):
        return {key: _render(item, values, left) for key, item in template.items()}
    if isinstance(template, list):
        return [_render(item, values, left) for item in template]
    return template


def _spend(left: list[int], size: int) -> None:
    left[0] -= size
    if left[0] < 0:
        raise TooLarge


def _text(value: JsonValue) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()
