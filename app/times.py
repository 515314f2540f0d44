"""Times: the clock (UTC, replaceable in tests); times given by people (CLI options, query
parameters), ISO 8601, read in UTC; and times written for people and files (audit documents,
exports), RFC 3339 in UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_utc(text: str) -> datetime:
    """An ISO 8601 date-time in UTC (UTC when it names no zone); ValueError otherwise.

    Only ISO text: lax parsers read ``0.5`` as a Unix time.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time") from None
    try:
        # 0001-01-01T00:00+01:00 falls before year 1 in UTC, where nothing can be stored.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range") from None


def audit_time(at: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as SQL's ``flowlog_time()`` writes it."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
