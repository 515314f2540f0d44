"""The events of an archive's stream (``archive-<id>``): the audit record of what left the
hot log, when, by whom, to which file, with which checksum."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

ARCHIVE_STREAM = "archive-"
PLANNED = "ArchivePlanned"
WRITTEN = "ArchiveWritten"
REMOVED = "ArchiveRemoved"
RESTORED = "ArchiveRestored"


def archive_stream(archive_id: str) -> str:
    return ARCHIVE_STREAM + archive_id


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def data(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class PlannedFlow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: int
    """The stream's version when it was chosen: a flow that moves after is left out."""


class ArchivePlanned(_Event):
    """The flows an archive run chose, recorded before any of them is touched (a run that
    stops half way is carried on from here)."""

    flows: list[PlannedFlow]
    retention: str
    """The retention that chose them (``default 30d, backup 7d``)."""


class ArchivedFlow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    tenant_id: str
    name: str
    status: str
    version: int
    """The version of its seal (FlowArchived): the stream as the archive holds it."""
    first_position: int
    last_position: int


class ArchiveWritten(_Event):
    """The archive file is written and synced: its name, size and checksums, and the flows it
    holds. Only flows named here can leave the hot log (flowlog_remove_archived())."""

    file: str
    """Its path when it was written (absolute)."""
    sha256: str
    """Of the file's bytes (compressed)."""
    events_sha256: str
    """Of its event lines: the export format's trailer (a file cut or altered is refused)."""
    bytes: int
    events: int
    flows: list[ArchivedFlow]
    dropped: list[str]
    """Planned flows that moved before they were sealed: not archived."""


class ArchiveRemoved(_Event):
    removed: int
    kept: list[str]
    """Flows the archive holds that stayed in the hot log (they moved after it was written)."""


class ArchiveRestored(_Event):
    """Flows brought back into the hot log from this archive (``flowlog import``)."""

    flows: list[str]
