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

_PLACEHOLDER: Final = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_\-]{1,200}")


class PathMissing(ValueError):
    """A placeholder names a value that is not there."""


def placeholders(template: JsonValue) -> Iterator[str]:
    """Every placeholder's path in a template (strings at any depth; keys are left alone)."""
    if isinstance(template, str):
        for match in _PLACEHOLDER.finditer(template):
            yield match[1].strip()
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


def render(template: JsonValue, values: Mapping[str, JsonValue]) -> JsonValue:
    """The template with its placeholders replaced from ``values`` (PathMissing: a value is
    not there). Check ``path_problems`` first: a malformed path is rendered as missing."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole is not None:
            return lookup(values, whole[1].strip())
        return _PLACEHOLDER.sub(lambda match: _text(lookup(values, match[1].strip())), template)
    if isinstance(template, dict):
        return {key: render(item, values) for key, item in template.items()}
    if isinstance(template, list):
        return [render(item, values) for item in template]
    return template


def _text(value: JsonValue) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()
