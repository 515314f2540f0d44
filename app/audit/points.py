"""A point in a flow's history, as people write it; apart from the replay so the command
line's arguments read it without loading the fold."""

from __future__ import annotations

from datetime import datetime

from flowlog.times import parse_utc

Point = int | datetime
"""A point in a flow's history: a stream version, or a time (the state then)."""


def parse_point(text: str) -> Point:
    """``7`` (a version, from 1) or an ISO 8601 time (UTC when it names no zone)."""
    if text.isdigit():
        version = int(text)
        if version < 1:
            raise ValueError("versions start at 1")
        return version
    try:
        return parse_utc(text)
    except ValueError as exc:
        raise ValueError(f"neither a version nor a time: {exc}") from None
