"""The REST API's named SQL (sql/queries/api.sql): the figures the metrics read from the
database (flow control's waiters among them), the definitions a tenant may see, and the
tenants of flows a bulk action names."""

from __future__ import annotations

from dataclasses import dataclass

from flowlog.sql import load_queries


@dataclass(frozen=True, slots=True)
class ApiQueries:
    flows_by_status: str
    reactor_lag: str
    leases: str
    archive_unfinished: str
    flows_waiting: str
    definitions_named: str
    definitions: str
    tenants_of: str


Q = load_queries(ApiQueries, "api")
