"""The service's health on the wire: liveness, and readiness with the read replicas as this
process sees them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flowlog.wire.base import Response
from flowlog.wire.envelope import Envelope


class ReplicaHealth(Response):
    """A read replica as this process sees it: ``ok`` serves reads; ``lagging``, ``down``,
    ``foreign`` (not a standby of this primary) and ``unknown`` (not checked yet) do not."""

    name: str
    state: Literal["ok", "lagging", "down", "foreign", "unknown"]
    lagSeconds: float | None = None
    replayed: str | None = None
    """How far it has replayed the primary's WAL (a commit position), as last seen."""
    error: str | None = None


class StrandedVersion(Response):
    """``flows`` flows of ``definition`` wait for a process that has ``version`` of it: none
    running has (docs/operations.md, "Upgrades: stranded flows")."""

    definition: str
    version: str
    flows: int


class Health(Response):
    status: str
    checks: dict[str, bool] = Field(default_factory=dict)


class Ready(Health):
    replicas: list[ReplicaHealth] = Field(default_factory=list)
    """The read replicas (FLOWLOG_READ_DATABASE_URL): one that is down or lagging does not
    make the service unready (the primary answers its reads)."""
    stranded: list[StrandedVersion] = Field(default_factory=list)
    """Flows waiting for a definition version that no running process has, by definition and
    version (every tenant's). They do not make the service unready: this process serves and
    runs what it has; a process with those versions, or a migration of the flows, is needed.
    Looked at only when the process is ready (empty otherwise)."""


class Readiness(Envelope[Ready]):
    """``/readyz`` answers in the envelope itself: its 503 carries the checks too."""
