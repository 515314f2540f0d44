"""The named SQL of the workflow engine (sql/queries/workflow.sql): the pending-work queue
(``flow_work``), the parking lot of polling flows, declarative definitions and the callback
secret."""

from __future__ import annotations

from dataclasses import dataclass

from flowlog.sql import load_queries


@dataclass(frozen=True, slots=True)
class WorkflowQueries:
    work_upsert: str
    work_delete: str
    work_claim: str
    work_heartbeat: str
    work_release: str
    work_defer: str
    work_wait: str
    work_release_all: str
    task_reoffer: str
    work_next_due: str
    park: str
    rest_until: str
    parked_changed: str
    parked_renew: str
    parked_release: str
    declarative_definitions: str
    callback_secret: str
    children_end: str
    children_wake_parents: str
    children_unend: str
    children_harvest: str
    children_unharvested: str
    children_ends: str
    children_in: str
    children_news: str
    waits_insert: str
    waits_delete: str


Q = load_queries(WorkflowQueries, "workflow")
