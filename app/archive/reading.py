"""Archived flows: where each went, and its events read back from its archive file."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flowlog.archive.files import read_archive
from flowlog.archive.format import TransferError
from flowlog.archive.queries import Q
from flowlog.eventstore.pool import Executor
from flowlog.times import audit_time
from flowlog.workflow.errors import FlowArchived, FlowNotFound, WorkflowError
from flowlog.workflow.streams import flow_stream


@dataclass(frozen=True, slots=True)
class ArchivedFlowInfo:
    flow_id: str
    archive_id: str
    tenant_id: str
    file: str
    sha256: str
    archived_at: datetime

    def details(self) -> dict[str, Any]:
        """What a client is told of it (the 410's ``data``): the archive and its file's name,
        never where the server keeps it."""
        return {
            "workFlowId": self.flow_id,
            "archiveId": self.archive_id,
            "file": Path(self.file).name,
            "archivedAt": audit_time(self.archived_at),
        }


async def archived(executor: Executor, flow_id: str) -> ArchivedFlowInfo | None:
    """Where the flow went, if its events left the hot log for an archive."""
    row = await executor.fetchrow(Q.archive_of, flow_id)
    if row is None:
        return None
    return ArchivedFlowInfo(
        row["flow_id"], row["archive_id"], row["tenant_id"], row["file"], row["sha256"],
        row["archived_at"],
    )  # fmt: skip


def locate(info: ArchivedFlowInfo, directory: Path | None) -> Path:
    """The archive file: where it was written, else by its name in ``directory`` (archives
    moved with their directory, or mounted elsewhere on this machine)."""
    written = Path(info.file)
    if written.exists() or directory is None:
        return written
    return directory / written.name


async def archived_records(info: ArchivedFlowInfo, directory: Path | None) -> list[dict[str, Any]]:
    """The flow's events as its archive holds them (export format objects), checksums
    checked; TransferError when the file is missing or does not match."""
    path = locate(info, directory)
    which = f"archive {info.archive_id} of flow {info.flow_id}"
    if not path.exists():
        raise TransferError(
            f"{which} is not at {path} (set FLOWLOG_ARCHIVE_DIR to where the archives are)"
        )
    try:
        _, records = await asyncio.to_thread(read_archive, path, info.sha256)
    except TransferError as exc:
        raise TransferError(f"{which}: {exc}") from None
    except OSError as exc:
        raise TransferError(f"{which}: cannot read {path}: {exc.strerror or exc}") from None
    stream = flow_stream(info.flow_id)
    return [r for r in records if r["stream_id"] == stream]


async def not_here(executor: Executor, flow_id: str, tenant: str | None) -> WorkflowError:
    """Why a flow the caller asked for is not in the hot log: archived (HTTP 410, with where
    to), or it does not exist (404; another tenant's archived flow does not exist either)."""
    info = await archived(executor, flow_id)
    if info is None or (tenant is not None and info.tenant_id != tenant):
        return FlowNotFound(flow_id)
    return FlowArchived(flow_id, info.details())
