"""Moving running flows to another version of their definition: the selection, the replay of
each flow against the target (app/audit/migration.py decides), and the appends.

Both versions must be known: registered in this process, or recorded in the log (a version in
code that this process did not load is rebuilt from its recorded description, enough to replay
against; a REST definition from its spec). One migration runs at a time per definition name
(an advisory lock held for the whole run: a second answers 409, 40142); a dry run takes no lock
and changes nothing. The clean flows of a batch are appended together (group commit), each
with the version it was judged at: a flow that moved meanwhile is judged again.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from flowlog.audit.migration import Verdict, judge, map_problems, shape_of
from flowlog.audit.queries import Q
from flowlog.builtins import definition_from_spec
from flowlog.eventstore import WrongExpectedVersion
from flowlog.wire.migrations import MigrationLine, MigrationRequest, MigrationResponse
from flowlog.workflow.caller import Caller
from flowlog.workflow.definition import WorkflowDefinition, visible_to
from flowlog.workflow.errors import (
    Code,
    DefinitionNotFound,
    FlowNotFound,
    InvalidDefinition,
    WorkflowError,
)
from flowlog.workflow.idempotency import KeyedRequest, Recorded, fingerprint
from flowlog.workflow.service import WorkflowService
from flowlog.workflow.streams import decode_recorded

BATCH = 100
"""Flows judged and appended together: one group commit carries a batch's appends."""
_ATTEMPTS = 5
"""Judgements of a flow that keeps moving under the migration, before it is reported so."""


@dataclasses.dataclass(frozen=True, slots=True)
class Versions:
    """The versions a migration moves between: the target as a definition to replay against,
    and the node keys of each."""

    target: WorkflowDefinition
    source_keys: tuple[str, ...]
    target_keys: tuple[str, ...]


async def migrate_flows(
    service: WorkflowService,
    name: str,
    body: MigrationRequest,
    caller: Caller,
    tenant: str | None,
) -> MigrationResponse:
    """Carries out (or, ``body.dryRun``, only judges) a migration of the flows of definition
    ``name`` that ``tenant`` (None: any) owns."""
    pool = service.store.pool
    versions = await known_versions(service, pool, name, body.from_, body.to, tenant)
    problems = map_problems(body.nodeMap, versions.source_keys, versions.target_keys)
    if problems:
        raise WorkflowError(Code.BAD_INPUT, "nodeMap: " + "; ".join(problems))
    if body.dryRun:
        return await _run(service, name, body, versions, caller, tenant)
    request = fingerprint("migrate", name, body.model_dump(mode="json", by_alias=True))
    keyed = KeyedRequest(pool, caller.idempotency, request, _first_answer)
    if (first := await keyed.answered()) is not None:
        return first
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(Q.migration_lock, name):
            raise WorkflowError(Code.MIGRATION_RUNNING, f"a migration of {name}'s flows is "
                                "running; send this one again when it has ended")  # fmt: skip
        answer = await _run(service, name, body, versions, caller, tenant)
    return await keyed.recorded(answer, lambda: answer.model_dump(mode="json"))


async def _first_answer(found: Recorded) -> MigrationResponse:
    return MigrationResponse.model_validate(found.answer)


async def known_versions(
    service: WorkflowService,
    pool: asyncpg.Pool,
    name: str,
    from_version: str,
    to_version: str,
    tenant: str | None,
) -> Versions:
    """The two versions of ``name``, or DefinitionNotFound (404) when the name is not one
    ``tenant`` may see, or either version is not known here or in the log."""
    registry = service.registry
    latest = registry.by_name(name)
    recorded = {r["version"]: r["definition"] for r in
                await pool.fetch(Q.migration_versions, name, tenant)}  # fmt: skip
    if latest is not None:
        if not visible_to(registry.owner(name), tenant):
            raise DefinitionNotFound(name)
    elif not recorded:
        raise DefinitionNotFound(name)

    def loaded(version: str) -> WorkflowDefinition | None:
        found = registry.by_version(version)
        return found if found is not None and found.name == name else None

    keys: dict[str, tuple[str, ...]] = {}
    for version in (from_version, to_version):
        definition = loaded(version)
        if definition is not None:
            keys[version] = tuple(definition.nodes)
        elif version in recorded:
            keys[version] = tuple(recorded[version].get("nodes", {}))
        else:
            raise DefinitionNotFound(name, version)
    target = loaded(to_version) or _rebuilt(name, to_version, recorded[to_version])
    return Versions(target, keys[from_version], keys[to_version])


def _rebuilt(name: str, version: str, described: Mapping[str, Any]) -> WorkflowDefinition:
    """A recorded version this process did not load: a REST definition from its spec (the very
    definition), one in code from its description (its shape)."""
    try:
        spec = described.get("spec")
        return definition_from_spec(spec) if spec is not None else shape_of(name, described)
    except (InvalidDefinition, ValueError, KeyError, TypeError) as exc:
        raise WorkflowError(Code.INVALID_DEFINITION, f"{name} version {version} cannot be "
                            f"rebuilt from the log to replay against: {exc}") from None  # fmt: skip


async def _run(
    service: WorkflowService,
    name: str,
    body: MigrationRequest,
    versions: Versions,
    caller: Caller,
    tenant: str | None,
) -> MigrationResponse:
    where = body.where
    rows = await service.store.pool.fetch(
        Q.migration_flows, name, [body.from_, body.to], tenant, where.bizType, where.status,
        where.flowIds, body.limit + 1,
    )  # fmt: skip
    flow_ids = [r["id"] for r in rows[: body.limit]]
    lines: list[MigrationLine] = []
    for first in range(0, len(flow_ids), BATCH):
        batch = flow_ids[first : first + BATCH]
        lines += await asyncio.gather(
            *(_one(service, flow_id, body, versions, caller) for flow_id in batch)
        )
    if not body.dryRun and any(line.outcome == "migrated" for line in lines):
        service.poke()
    count = {o: sum(1 for line in lines if line.outcome == o)
             for o in ("clean", "migrated", "blocked", "already")}  # fmt: skip
    return MigrationResponse(
        name=name, fromVersion=body.from_, toVersion=body.to,
        nodeMap={k: v for k, v in sorted(body.nodeMap.items()) if k != v}, dryRun=body.dryRun,
        flows=lines, clean=count["clean"] + count["migrated"], blocked=count["blocked"],
        already=count["already"], truncated=len(rows) > body.limit,
    )  # fmt: skip


async def _one(
    service: WorkflowService,
    flow_id: str,
    body: MigrationRequest,
    versions: Versions,
    caller: Caller,
) -> MigrationLine:
    for _ in range(_ATTEMPTS):
        try:
            _, recorded = await service.flows.load_with_events(flow_id)
        except FlowNotFound:
            return MigrationLine(workFlowId=flow_id, outcome="blocked", reason="it is gone")
        history = [(decode_recorded(e), e.recorded_at) for e in recorded]
        verdict = judge(history, versions.target, body.to, body.from_, body.nodeMap)
        if verdict.outcome != "clean" or body.dryRun:
            return _line(flow_id, verdict)
        assert verdict.state is not None
        assert verdict.event is not None
        try:
            after = await service.flows.append(verdict.state, [verdict.event], caller)
        except WrongExpectedVersion:
            continue  # it moved meanwhile: judge it again as it is now
        return MigrationLine(workFlowId=flow_id, outcome="migrated",
                             status=after.status.value, version=after.version)  # fmt: skip
    return MigrationLine(workFlowId=flow_id, outcome="blocked",
                         reason="it kept changing under the migration; send it again")  # fmt: skip


def _line(flow_id: str, verdict: Verdict) -> MigrationLine:
    state = verdict.state
    return MigrationLine(
        workFlowId=flow_id, outcome=verdict.outcome, reason=verdict.reason,
        status=None if state is None else state.status.value,
        version=None if state is None else state.version,
    )  # fmt: skip


def summary_lines(answer: MigrationResponse) -> Sequence[str]:
    """The answer for people (the CLI): a line per flow, then the counts."""
    done = "would move" if answer.dryRun else "moved"
    lines = [f"{line.workFlowId}  {line.outcome}" + (f": {line.reason}" if line.reason else "")
             for line in answer.flows]  # fmt: skip
    mapped = ", ".join(f"{k} → {v}" for k, v in answer.nodeMap.items())
    lines.append(
        f"{answer.name} {answer.fromVersion} → {answer.toVersion}"
        + (f" (node {mapped})" if mapped else "")
        + f": {answer.clean} {done}, {answer.blocked} blocked, {answer.already} already on "
        f"{answer.toVersion}" + (" (more flows match: run it again)" if answer.truncated else "")
    )
    return lines
