"""How long ended flows stay in the hot log: a retention for all, and per definition."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

_DURATION = re.compile(r"^(\d{1,9})\s*(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
OFF = "off"


class BadRetention(ValueError):
    """A retention that is neither a duration (``30d``, ``12h``, ``90m``, ``45s``) nor off."""


def parse_duration(text: str) -> timedelta | None:
    """A retention: a duration, or None for ``off`` (kept for ever)."""
    value = text.strip().lower()
    if value == OFF:
        return None
    match = _DURATION.match(value)
    if match is None:
        raise BadRetention(f"not a retention (30d, 12h, 90m, 45s or off): {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def describe(keep: timedelta | None) -> str:
    if keep is None:
        return OFF
    seconds = int(keep.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class Selection:
    """One retention's share of the flows: those of ``names`` (None: of every definition not
    in ``excluded``) ended more than ``keep`` ago."""

    keep: timedelta
    names: tuple[str, ...] | None
    excluded: tuple[str, ...] = ()

    def describe(self) -> str:
        who = "definitions " + ", ".join(self.names) if self.names else "every other definition"
        if self.names is None and not self.excluded:
            who = "every definition"
        return f"{who}: {describe(self.keep)}"


@dataclass(frozen=True, slots=True)
class Retention:
    default: timedelta | None = None
    """For every definition without its own (None: off, the default)."""
    by_definition: Mapping[str, timedelta | None] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.default is not None or any(v is not None for v in self.by_definition.values())

    def selections(self) -> list[Selection]:
        own = tuple(sorted(self.by_definition))
        found = [
            Selection(keep, (name,))
            for name, keep in sorted(self.by_definition.items())
            if keep is not None
        ]
        if self.default is not None:
            found.append(Selection(self.default, None, own))
        return found

    def describe(self) -> str:
        parts = [f"default {describe(self.default)}"]
        parts += [f"{name} {describe(keep)}" for name, keep in sorted(self.by_definition.items())]
        return ", ".join(parts)


def parse_definitions(text: str) -> dict[str, timedelta | None]:
    """Retentions by definition, as FLOWLOG_RETENTION_DEFINITIONS says them:
    ``name=30d,other=off``."""
    own: dict[str, timedelta | None] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, keep = part.partition("=")
        if not sep or not name.strip():
            raise BadRetention(f"not name=retention: {part.strip()!r}")
        own[name.strip()] = parse_duration(keep)
    return own


BATCH = 1000
"""Flows per archive file."""
CHUNK = 100
"""Flows removed per transaction: each removal holds its rows' locks this long, no longer."""


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    """How a process archives. How long flows stay is not here: it is the owner's, read
    from the database at each run (app/archive/retention.py)."""

    directory: Path
    """Where archive files are written (FLOWLOG_ARCHIVE_DIR): shared by every process that
    archives, and kept as long as the flows must be (their only copy)."""
    batch: int = BATCH
    chunk: int = CHUNK
