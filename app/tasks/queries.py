"""The named SQL of the task API (sql/queries/tasks.sql)."""

from __future__ import annotations

from dataclasses import dataclass

from flowlog.sql import load_queries


@dataclass(frozen=True, slots=True)
class TaskQueries:
    task_claim: str
    task_claimed_before: str
    task_unclaim: str
    task_heartbeat: str
    task_current: str
    task_poll_later: str
    worker_seen: str
    workers_forget: str
    queues: str
    task_of_flow: str


Q = load_queries(TaskQueries, "tasks")
