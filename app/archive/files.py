"""Archive files: the export format (docs/audit.md), gzip-compressed, written whole or not at
all, and read back only when their checksums hold."""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from flowlog.archive.format import (
    FORMAT,
    FORMAT_VERSION,
    Reading,
    TransferError,
    check_trailer,
    header_of,
)
from flowlog.eventstore import RecordedEvent
from flowlog.times import audit_time

SUFFIX = ".jsonl.gz"


@dataclass(frozen=True, slots=True)
class WrittenFile:
    path: Path
    sha256: str
    events_sha256: str
    bytes: int
    events: int


def event_line(event: RecordedEvent) -> bytes:
    """One event as the export format writes it."""
    return orjson.dumps(
        {
            "position": event.position,
            "stream_id": event.stream_id,
            "version": event.version,
            "type": event.type,
            "data": event.data,
            "metadata": event.metadata,
            "recorded_at": event.recorded_at,
        }
    )


def write_archive(
    directory: Path, archive_id: str, events: Sequence[RecordedEvent], source: dict[str, Any]
) -> WrittenFile:
    """Writes the archive beside its final name, syncs it, then renames it into place (and
    syncs the directory): the file exists whole, or not at all."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{archive_id}{SUFFIX}"
    partial = directory / f".{archive_id}{SUFFIX}.partial"
    digest = hashlib.sha256()
    header = {
        "format": FORMAT,
        "formatVersion": FORMAT_VERSION,
        "exportedAt": audit_time(datetime.now(UTC)),
        "selection": {"archive": archive_id},
        "source": source,
        "events": len(events),
    }
    with open(partial, "wb") as raw:
        # mtime 0: the same events make the same bytes, so the checksum says only that.
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as out:
            out.write(orjson.dumps(header) + b"\n")
            for event in events:
                line = event_line(event)
                digest.update(line)
                out.write(line + b"\n")
            trailer = {"end": True, "events": len(events), "sha256": digest.hexdigest()}
            out.write(orjson.dumps(trailer) + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(partial, path)
    _sync_directory(directory)
    return WrittenFile(path, file_sha256(path), digest.hexdigest(), path.stat().st_size,
                       len(events))  # fmt: skip


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        for block in iter(lambda: raw.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_archive(
    path: Path, sha256: str | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The archive's header and its event objects (as the export format has them), once the
    file's checksum (when given) and its trailer's hold; TransferError otherwise."""
    if sha256 is not None and file_sha256(path) != sha256:
        raise TransferError(f"{path} does not match the checksum its archive recorded: altered")
    reading = Reading()
    events: list[dict[str, Any]] = []
    try:
        with gzip.open(path, "rb") as lines:
            reading.header = header_of(next(lines, b""))
            for line in _lines(lines):
                record = orjson.loads(line)
                if not isinstance(record, dict):
                    raise TransferError("a line is not an event: the file was altered")
                if record.get("end") is True:
                    reading.trailer = record
                    continue
                reading.digest.update(line)
                reading.events += 1
                events.append(record)
        check_trailer(reading)
    except TransferError as exc:
        raise TransferError(f"{path}: {exc}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile, orjson.JSONDecodeError) as exc:
        raise TransferError(f"{path} is not a readable archive ({exc}): cut or altered") from None
    return reading.header, events


def _lines(source: Iterator[bytes]) -> Iterator[bytes]:
    for raw in source:
        line = raw.rstrip(b"\n")
        if line:
            yield line


def recorded(record: dict[str, Any]) -> RecordedEvent:
    """An archived event as the log held it (its transaction id is not kept: 0)."""
    return RecordedEvent(
        position=record["position"],
        transaction_id=0,
        stream_id=record["stream_id"],
        version=record["version"],
        type=record["type"],
        data=record["data"],
        metadata=record["metadata"],
        recorded_at=datetime.fromisoformat(record["recorded_at"]),
    )


def archive_id_in(path: Path) -> str | None:
    """The archive a file is (by its header), or None: a plain export, or not one at all."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as lines:
            header = orjson.loads(next(iter(lines), b"{}"))
    except (OSError, EOFError, orjson.JSONDecodeError):
        return None
    selection = header.get("selection") if isinstance(header, dict) else None
    archive = selection.get("archive") if isinstance(selection, dict) else None
    return archive if isinstance(archive, str) else None
