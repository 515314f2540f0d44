"""The archive run: ended flows past their retention leave the hot log, one archive at a time.

Each archive is a small saga recorded in its own stream, ``archive-<id>``, so that a run that
stops anywhere (kill -9 included) is carried on by the next run, and nothing leaves the log
unrecorded:

1. ``ArchivePlanned``: the chosen flows and their versions;
2. each flow is sealed by ``FlowArchived`` in its own stream, appended with the version it was
   chosen at (a flow that moved meanwhile is dropped), after which it takes no command;
3. the sealed streams are written to the archive file (the export format, gzip, checksums),
   synced, renamed into place;
4. ``ArchiveWritten``: the file, its checksums, and the flows with their positions;
5. the flows are removed from the hot log in chunks, each its own short transaction, by
   ``flowlog_remove_archived()``, which checks all of the above in the log itself;
6. ``ArchiveRemoved``: how many left, and which stayed (none should).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from tqdm import tqdm

from flowlog.archive import events as ev
from flowlog.archive.files import write_archive
from flowlog.archive.policy import ArchiveSettings, Retention, Selection
from flowlog.archive.queries import Q
from flowlog.archive.retention import load_retention
from flowlog.eventstore import (
    AppendAlso,
    EventStore,
    Expect,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    WrongExpectedVersion,
)
from flowlog.faults import failpoint
from flowlog.workflow.caller import Caller
from flowlog.workflow.commands import ArchiveFlow
from flowlog.workflow.decide import decide
from flowlog.workflow.errors import WorkflowError
from flowlog.workflow.events import FlowRestored
from flowlog.workflow.state import FlowState
from flowlog.workflow.store import FlowRepository
from flowlog.workflow.streams import FLOW_STREAM, flow_stream, fold_recorded

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ArchiveReport:
    archives: list[str] = field(default_factory=list)
    flows: int = 0
    events: int = 0
    bytes: int = 0
    removed: int = 0
    kept: int = 0
    dropped: int = 0
    seconds: float = 0.0
    would_archive: dict[str, int] = field(default_factory=dict)
    """A dry run's answer: flows by definition."""
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds spent sealing, writing (reading the streams again, the file, its record) and
    removing."""

    def timed(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.phases[phase] = round(self.phases.get(phase, 0.0) + now - since, 3)
        return now

    @property
    def flows_per_s(self) -> float:
        return self.flows / self.seconds if self.seconds else 0.0


class Archiver:
    def __init__(
        self, store: EventStore, settings: ArchiveSettings, caller: Caller | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.caller = caller or Caller(actor="archiver")
        self._flows = FlowRepository(store)

    async def retention(self) -> Retention:
        """The owner's retention, which the removal checks too: read from the database at
        each run, so that a flow is sealed only if the removal will take it."""
        return (await load_retention(self.store.pool)).retention

    async def dry_run(self) -> ArchiveReport:
        """What a run would archive now, by definition (archives left half done included)."""
        report = ArchiveReport()
        for selection in (await self.retention()).selections():
            for row in await self.store.pool.fetch(Q.candidate_summary, *_where(selection)):
                report.would_archive[row["name"]] = (
                    report.would_archive.get(row["name"], 0) + row["flows"]
                )
        for row in await self.store.pool.fetch(Q.unfinished):
            report.archives.append(row["id"])
        return report

    async def run(self, *, limit: int | None = None, progress: bool = False) -> ArchiveReport:
        """Carries on any archive left half done, then archives every flow past its
        retention (at most ``limit``), ``batch`` flows an archive."""
        report = ArchiveReport()
        started = time.perf_counter()
        for row in await self.store.pool.fetch(Q.unfinished):
            await self._carry_on(row["id"], report)
        stuck: set[Selection] = set()
        bar = tqdm(desc="archive", unit="flow", disable=not progress)
        # The file, record and removal of one archive run while the next one is chosen and
        # sealed: its flows are sealed, so no choice takes them again.
        finishing: asyncio.Task[None] | None = None
        busy: list[str] = []
        taken = 0
        try:
            while limit is None or taken < limit:
                room = self.settings.batch if limit is None else limit - taken
                chosen = await self._choose(min(room, self.settings.batch), stuck, busy)
                if chosen is None:
                    break
                selection, rows = chosen
                archive_id, sealed, finish = await self._archive(rows, selection, report)
                busy = [r["id"] for r in rows]
                taken += sealed
                bar.update(len(rows))
                if finishing is not None:
                    await finishing
                finishing = asyncio.create_task(
                    self._stuck_unless_removed(finish, selection, len(rows), stuck, report),
                    name=f"archive-{archive_id}",
                )
            if finishing is not None:
                await finishing
        finally:
            if finishing is not None and not finishing.done():
                finishing.cancel()
                await asyncio.gather(finishing, return_exceptions=True)
            bar.close()
        report.seconds = time.perf_counter() - started
        return report

    async def _stuck_unless_removed(
        self,
        finish: Coroutine[Any, Any, None],
        selection: Selection,
        chosen: int,
        stuck: set[Selection],
        report: ArchiveReport,
    ) -> None:
        removed = report.removed
        await finish
        if report.removed == removed:
            # Every chosen flow moved, or the database kept them (the owner changed the
            # retention meanwhile), or a row and its log disagree (verify says where):
            # choosing again would choose them again.
            log.warning(
                "an archive run chose flows it could not archive",
                extra={"flows": chosen, "retention": selection.describe()},
            )
            stuck.add(selection)

    async def _choose(
        self, room: int, stuck: set[Selection], busy: list[str]
    ) -> tuple[Selection, Sequence[Any]] | None:
        """The next flows past their retention. The retention is read again for each archive:
        one the owner changes applies from the next archive on."""
        for selection in (await self.retention()).selections():
            if selection in stuck:
                continue
            rows = await self.store.pool.fetch(Q.candidates, *_where(selection), room, busy)
            if rows:
                return selection, rows
        return None

    # -- one archive -------------------------------------------------------------------------

    async def _archive(
        self, rows: Sequence[Any], selection: Selection, report: ArchiveReport
    ) -> tuple[str, int, Coroutine[Any, Any, None]]:
        """Plans and seals an archive of ``rows``: its id, how many flows it sealed, and the
        rest of it (the file, its record, the removal) to run."""
        archive_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        planned = ev.ArchivePlanned(
            flows=[ev.PlannedFlow(id=r["id"], version=r["stream_version"]) for r in rows],
            retention=selection.describe(),
        )
        await self._record(
            archive_id, planned, Expect.NO_STREAM,
            AppendAlso.of((Q.project_planned, (archive_id, len(rows)))),
        )  # fmt: skip
        log.info("archive planned", extra={"archive": archive_id, "flows": len(rows)})
        failpoint("archive-planned")
        sealed, finish = await self._sealed(archive_id, report)
        return archive_id, sealed, finish

    async def _carry_on(self, archive_id: str, report: ArchiveReport) -> None:
        """Takes the archive from wherever its stream says it got to."""
        _, finish = await self._sealed(archive_id, report)
        await finish

    async def _sealed(
        self, archive_id: str, report: ArchiveReport
    ) -> tuple[int, Coroutine[Any, Any, None]]:
        """Seals the archive's flows, unless its stream says they are: how many it sealed,
        and the rest of the archive to run."""
        recorded = await self.store.read_stream(ev.archive_stream(archive_id))
        kinds = {e.type: e for e in recorded}
        if ev.REMOVED in kinds:
            return 0, _nothing()
        if ev.WRITTEN in kinds:
            written = ev.ArchiveWritten.model_validate(kinds[ev.WRITTEN].data)
            return len(written.flows), self._removed(archive_id, written, report)
        planned = ev.ArchivePlanned.model_validate(kinds[ev.PLANNED].data)
        sealed, dropped = await self._seal_all(archive_id, planned, report)
        return len(sealed), self._written(archive_id, sealed, dropped, len(recorded), report)

    async def _removed(
        self, archive_id: str, written: ev.ArchiveWritten, report: ArchiveReport
    ) -> None:
        report.archives.append(archive_id)
        report.flows += len(written.flows)
        report.events += written.events
        report.bytes += written.bytes
        await self._remove(archive_id, written, report)

    async def _seal_all(
        self, archive_id: str, planned: ev.ArchivePlanned, report: ArchiveReport
    ) -> tuple[dict[str, tuple[FlowState, list[RecordedEvent]]], list[str]]:
        """Seals the planned flows that are as they were chosen: each sealed flow's state and
        whole stream (its seal included), and the flows dropped."""
        started = time.perf_counter()
        wanted = {f.id: f.version for f in planned.flows}
        streams = await self._read([flow_stream(i) for i in wanted])
        # Each sealed flow's state and whole stream, its seal included: what the file holds.
        sealed: dict[str, tuple[FlowState, list[RecordedEvent]]] = {}
        dropped: list[str] = []
        seals: list[tuple[str, FlowState]] = []
        for flow_id, stored in streams.items():
            state = fold_recorded(stored)
            assert state is not None
            last = stored[-1]
            if last.type == "FlowArchived" and last.data.get("archive_id") == archive_id:
                sealed[flow_id] = (state, stored)  # sealed by this archive before a stop
            elif state.version == wanted[flow_id] and state.terminal and not state.archived:
                seals.append((flow_id, state))
            else:
                dropped.append(flow_id)
        dropped += [i for i in wanted if i not in streams]
        outcomes = await asyncio.gather(
            *(self._seal(state, archive_id) for _, state in seals), return_exceptions=True
        )
        for (flow_id, _), outcome in zip(seals, outcomes, strict=True):
            if isinstance(outcome, WrongExpectedVersion | WorkflowError):
                dropped.append(flow_id)  # it moved: it stays
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                after, seal = outcome
                sealed[flow_id] = (after, streams[flow_id] + seal)
        failpoint("archive-sealed")
        report.timed("seal", started)
        return sealed, dropped

    async def _written(
        self,
        archive_id: str,
        sealed: dict[str, tuple[FlowState, list[RecordedEvent]]],
        dropped: list[str],
        version: int,
        report: ArchiveReport,
    ) -> None:
        """The rest of a sealed archive: its file, its record, the removal."""
        started = time.perf_counter()
        written = await self._write(archive_id, sealed, sorted(dropped))
        await self._record(
            archive_id, written, version,
            AppendAlso.of(
                (Q.project_written, (
                    archive_id, written.file, written.sha256, written.bytes, len(written.flows),
                    written.events,
                    min((f.first_position for f in written.flows), default=None),
                    max((f.last_position for f in written.flows), default=None),
                )),
                (Q.project_written_flows, (archive_id, *_flow_columns(written.flows))),
            ),
        )  # fmt: skip
        report.timed("write", started)
        log.info(
            "archive written",
            extra={"archive": archive_id, "flows": len(written.flows), "file": written.file},
        )
        report.dropped += len(written.dropped)
        await self._removed(archive_id, written, report)

    async def _seal(
        self, state: FlowState, archive_id: str
    ) -> tuple[FlowState, list[RecordedEvent]]:
        events = decide(state, ArchiveFlow(archive_id), None, datetime.now(UTC))
        return await self._flows.append_recorded(state, events, self.caller)

    async def _write(
        self,
        archive_id: str,
        sealed: dict[str, tuple[FlowState, list[RecordedEvent]]],
        dropped: list[str],
    ) -> ev.ArchiveWritten:
        chosen = sorted(sealed.items())
        events = [e for _, (_, stored) in chosen for e in stored]
        source = {"database": await self.store.pool.fetchval("SELECT current_database()")}
        file = await asyncio.to_thread(
            write_archive, self.settings.directory, archive_id, events, source
        )
        flows = [
            ev.ArchivedFlow(
                id=flow_id, tenant_id=state.tenant_id, name=state.name,
                status=state.status.value, version=state.version,
                first_position=min(e.position for e in stored),
                last_position=max(e.position for e in stored),
            )
            for flow_id, (state, stored) in chosen
        ]  # fmt: skip
        return ev.ArchiveWritten(
            file=str(file.path.resolve()), sha256=file.sha256, events_sha256=file.events_sha256,
            bytes=file.bytes, events=file.events, flows=flows, dropped=dropped,
        )  # fmt: skip

    async def _remove(
        self, archive_id: str, written: ev.ArchiveWritten, report: ArchiveReport
    ) -> None:
        failpoint("archive-written")
        started = time.perf_counter()
        ids = [f.id for f in written.flows]
        stream = ev.archive_stream(archive_id)
        for start in range(0, len(ids), self.settings.chunk):
            await self.store.pool.fetchval(
                Q.remove, stream, ids[start : start + self.settings.chunk]
            )
            failpoint("archive-removing")
        # Counted from the log, not from the calls: a run that stopped half way removed some.
        remaining = set(await self._heads([flow_stream(i) for i in ids]))
        kept = sorted(i for i in ids if flow_stream(i) in remaining)
        removed = len(ids) - len(kept)
        if kept:
            await self._lift(archive_id, kept)
        version = await self.store.stream_version(stream)
        await self._record(
            archive_id, ev.ArchiveRemoved(removed=removed, kept=kept), version,
            AppendAlso.of(
                (Q.project_removed, (archive_id, removed)), (Q.project_kept, (archive_id, kept))
            ),
        )  # fmt: skip
        report.removed += removed
        report.kept += len(kept)
        report.timed("remove", started)
        log.info(
            "archive removed from the hot log",
            extra={"archive": archive_id, "removed": removed, "kept": len(kept)},
        )

    async def _lift(self, archive_id: str, kept: list[str]) -> None:
        """Lifts the seal of flows the removal kept (the owner lengthened their retention
        after they were sealed): they stay in the hot log and take commands again, and a
        later run archives them when their retention is over."""
        log.warning(
            "the database kept flows of an archive in the hot log: their retention is not over",
            extra={"archive": archive_id, "kept": len(kept)},
        )
        for stored in (await self._read([flow_stream(i) for i in kept])).values():
            last = stored[-1]
            if last.type != "FlowArchived" or last.data.get("archive_id") != archive_id:
                continue  # lifted by a run that stopped before it recorded the removal
            state = fold_recorded(stored)
            assert state is not None
            try:
                await self._flows.append(state, [FlowRestored(archive_id=archive_id)], self.caller)
            except WrongExpectedVersion:
                continue  # it moved meanwhile: left as it is

    # -- reading and recording ---------------------------------------------------------------

    async def _read(self, streams: list[str]) -> dict[str, list[RecordedEvent]]:
        """The streams' events, by flow id (flows without events are absent)."""
        rows = await self.store.pool.fetch(Q.read_streams, streams)
        found: dict[str, list[RecordedEvent]] = {}
        for stream_id, group in groupby(rows, key=lambda r: r["stream_id"]):
            found[stream_id.removeprefix(FLOW_STREAM)] = [RecordedEvent(*r) for r in group]
        return found

    async def _heads(self, streams: list[str]) -> list[str]:
        rows = await self.store.pool.fetch(Q.stream_heads, streams)
        return [r["stream_id"] for r in rows]

    async def _record(
        self, archive_id: str, event: ev.ArchivePlanned | ev.ArchiveWritten | ev.ArchiveRemoved,
        expected: ExpectedVersion, also: AppendAlso,
    ) -> None:  # fmt: skip
        await self.store.append(
            ev.archive_stream(archive_id),
            [NewEvent(type(event).__name__, event.data(), self.caller.metadata())],
            expected,
            also=also,
        )


async def _nothing() -> None:
    return None


def _where(selection: Selection) -> tuple[Any, ...]:
    return (selection.keep, list(selection.names) if selection.names else None,
            list(selection.excluded))  # fmt: skip


def _flow_columns(flows: Sequence[ev.ArchivedFlow]) -> tuple[list[Any], ...]:
    return (
        [f.id for f in flows], [f.tenant_id for f in flows], [f.name for f in flows],
        [f.status for f in flows], [f.version for f in flows],
        [f.first_position for f in flows], [f.last_position for f in flows],
    )  # fmt: skip
