"""Moving running flows to another version of their definition
(``POST /api/v1/workflow-definitions/{name}/migrations``): the request, and an answer with a
line per selected flow."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from flowlog.wire.base import FlowId, Request, Response
from flowlog.wire.flows import FlowStatusName

MIGRATION_LIMIT = 10_000
"""The most flows one migration request selects (its answer has a line for each)."""

Version = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_.:-]+$")]
"""A definition version (a content hash: 16 hexadecimal digits for flowlog's own)."""
NodeKey = Annotated[str, Field(min_length=1, max_length=200)]


class MigrationWhere(Request):
    """Which flows of the definition: all its flows that have not ended, on either version,
    by default; narrowed by business type, status (an ended status selects ended flows, each
    reported blocked) or ids."""

    bizType: str | None = Field(None, min_length=1, max_length=200)
    status: FlowStatusName | None = None
    flowIds: list[FlowId] | None = Field(None, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _distinct(self) -> MigrationWhere:
        if self.flowIds is not None and len(set(self.flowIds)) != len(self.flowIds):
            raise ValueError("flowIds names a flow twice")
        return self


class MigrationRequest(Request):
    """Move the selected flows of the definition from version ``from`` to version ``to``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: Version = Field(..., alias="from")
    to: Version
    nodeMap: dict[NodeKey, NodeKey] = Field(default_factory=dict, max_length=1000)
    """A node key of ``from`` -> the key of the node that stands for it in ``to`` (keys not
    named keep their key)."""
    where: MigrationWhere = Field(default_factory=MigrationWhere)
    dryRun: bool = False
    """Only say which flows would move and which are blocked; change nothing."""
    limit: int = Field(1000, ge=1, le=MIGRATION_LIMIT)
    """At most this many flows (the oldest first); ``truncated`` says when there were more."""

    @model_validator(mode="after")
    def _two_versions(self) -> MigrationRequest:
        if self.from_ == self.to:
            raise ValueError("from and to are the same version")
        return self


MigrationOutcome = Literal["clean", "blocked", "already", "migrated"]


class MigrationLine(Response):
    workFlowId: str
    outcome: MigrationOutcome
    """clean: it would move (dry run); migrated: it moved; already: it is on ``to``;
    blocked: it stays where it is, ``reason`` says why."""
    reason: str = ""
    status: FlowStatusName | None = None
    version: int | None = None
    """The flow's stream version after the answer (a migration appended FlowMigrated)."""


class MigrationResponse(Response):
    name: str
    fromVersion: str
    toVersion: str
    nodeMap: dict[str, str]
    dryRun: bool
    flows: list[MigrationLine]
    """One per selected flow, oldest first: none is left out."""
    clean: int
    """Flows that moved (or, in a dry run, would move)."""
    blocked: int
    already: int
    truncated: bool
    """More flows matched than ``limit``: send the request again for the rest."""
