"""The log's file format: JSON lines with a header, one line per event, and a checksummed
trailer (the format is described in flowlog.audit.transfer, which exports and imports whole
logs in it). Archive files are written in it too; this module is what both read and check."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

FORMAT = "flowlog-export"
FORMAT_VERSION = 1
COLUMNS = ("stream_id", "version", "type", "data", "metadata", "recorded_at")
"""The events' columns a file carries, in the order of COPY into ``events``."""


class TransferError(Exception):
    """The file or the target refuses the transfer; nothing was written."""


@dataclass(slots=True)
class Reading:
    """The state of a file being read: the header, the running digest, the trailer."""

    header: dict[str, Any] = field(default_factory=dict)
    digest: Any = field(default_factory=hashlib.sha256)
    events: int = 0
    trailer: dict[str, Any] | None = None


def header_of(line: bytes) -> dict[str, Any]:
    try:
        header = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise TransferError("not a flowlog export (the first line is not JSON)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise TransferError("not a flowlog export (no flowlog-export header)")
    if header.get("formatVersion") != FORMAT_VERSION:
        raise TransferError(
            f"export format version {header.get('formatVersion')} is not supported "
            f"(this flowlog reads version {FORMAT_VERSION})"
        )
    return header


def check_trailer(reading: Reading) -> None:
    trailer = reading.trailer
    if trailer is None:
        raise TransferError("the file ends without its trailer: it was cut short")
    if trailer.get("events") != reading.events:
        raise TransferError(
            f"the trailer counts {trailer.get('events')} events, the file has {reading.events}"
        )
    if trailer.get("sha256") != reading.digest.hexdigest():
        raise TransferError("the events do not match the trailer's checksum: the file was altered")
