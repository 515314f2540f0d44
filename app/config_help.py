"""flowlog's environment variables as people read them: by topic, with a note per topic, and
each with its default and description, as ``flowlog --help`` lists them and the README's table
says them (tests/test_config.py holds the table equal). Read off the settings model
(app/config.py), where each variable is declared once, so that neither can fall behind it;
kept apart from the model, which the processes read, as only the command line and the tests
need the listing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowlog.config import FIELDS, Topic

TOPICS: dict[Topic, str] = {
    "database": "",
    "embedded": "when DATABASE_URL is unset",
    "serve": "",
    "sign-on": "the console's single sign-on, docs/access.md",
    "reactor": "",
    "webhooks": "docs/webhooks.md",
    "archive": "",
    "logs": "",
}
"""What the variables are for, in the order ``--help`` lists them (with a note, if any)."""


@dataclass(frozen=True, slots=True)
class Variable:
    """An environment variable of the settings, as ``--help`` and the README say it."""

    name: str
    topic: Topic
    shown: str
    """Its default as the README's table says it."""
    description: str


def _variables() -> tuple[Variable, ...]:
    found = []
    for name, field in FIELDS.items():
        about: Any = field.json_schema_extra
        shown = about["shown"] or _shown(field.get_default(call_default_factory=False))
        found.append(Variable(name, about["topic"], shown, field.description or ""))
    return tuple(found)


def _shown(default: Any) -> str:
    if default is None:
        return "unset"
    if default in ("", ()):
        return "none"
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`"


def environment() -> tuple[tuple[str, tuple[str, ...], str], ...]:
    """The variables by topic, as ``--help`` lists them: (topic, names, note)."""
    return tuple(
        (topic, tuple(v.name for v in VARIABLES if v.topic == topic), note)
        for topic, note in TOPICS.items()
    )


VARIABLES = _variables()
"""The variables of the settings, in the model's order."""
