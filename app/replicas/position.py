"""Commit positions: where a write ended in the primary's WAL, as clients see them.

A position is a PostgreSQL LSN (``16/B374D848``). Internally it is the byte offset the LSN
stands for, so positions compare as integers.
"""

from __future__ import annotations

import re

HEADER = "Flowlog-Position"
"""A write's answer carries its commit position here; a read that presents one (in the same
header) sees at least that write."""
COOKIE = "flowlog_position"
"""The same for a console session: its writes leave their position in this cookie."""

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


class BadPosition(ValueError):
    """Text that is not a commit position."""


def parse_position(text: str) -> int:
    match = _LSN.match(text.strip())
    if match is None:
        raise BadPosition(f"not a commit position (an LSN like 0/16B3748): {text[:40]!r}")
    return int(match.group(1), 16) << 32 | int(match.group(2), 16)


def format_position(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"
