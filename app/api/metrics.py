"""Prometheus metrics of one process: flows by definition and status, node durations,
reactor lag, leases, unfinished archives, parked flows, schedule fire delays, reads and
replicas, task queues, flows waiting on flow control, flows awaiting a definition version no
running process has, webhook deliveries and lag, HTTP requests. A registry per application,
no global state."""

from __future__ import annotations

import time
from collections.abc import Sequence

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from flowlog.api.queries import Q
from flowlog.replicas.replica import Replica
from flowlog.tasks.queries import Q as TQ
from flowlog.tasks.service import WORKERS_SEEN_SECONDS
from flowlog.webhooks.queries import Q as WQ
from flowlog.webhooks.sender import DeliveryCounts
from flowlog.workflow.versions import awaiting

CLIENT_GONE_STATUS = 499
"""What the request log and metrics record for a client that hung up (nginx's convention)."""


LAG_COUNT_LIMIT = 10_000
LAG_REFRESH_SECONDS = 5.0
"""The webhooks' lag is read at most this often (the scrape is anyone's to call, and the
query's cost grows with the subscriptions)."""
"""A subscription's unread events are counted up to this (the count walks the log)."""

_DURATIONS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.flows = Gauge(
            "flowlog_flows", "Flows by definition and status (whole database).",
            ["definition", "status"], registry=self.registry,
        )  # fmt: skip
        self.node_seconds = Histogram(
            "flowlog_node_duration_seconds", "Executor run time, by definition, node and outcome.",
            ["definition", "node", "outcome"], buckets=_DURATIONS, registry=self.registry,
        )  # fmt: skip
        self.reactor_lag = Gauge(
            "flowlog_reactor_lag_seconds",
            "How long the oldest due flow that no reactor holds has waited.",
            registry=self.registry,
        )
        self.leases = Gauge(
            "flowlog_leases", "Pending-work rows by lease state (held, expired, pending).",
            ["state"], registry=self.registry,
        )  # fmt: skip
        self.archive_unfinished = Gauge(
            "flowlog_archive_unfinished_seconds",
            "How long the oldest archive not yet through its removal has been under way (0 "
            "when none): an archive run that fails leaves its archive unfinished.",
            registry=self.registry,
        )
        self.busy = Gauge(
            "flowlog_reactor_busy_flows", "Flows this process's reactor drives now.",
            registry=self.registry,
        )  # fmt: skip
        self.concurrency_limit = Gauge(
            "flowlog_reactor_concurrency_limit",
            "Flows this process's reactor may drive at once now (its adaptive limit, or "
            "FLOWLOG_CONCURRENCY when set; 0 without a reactor).",
            registry=self.registry,
        )
        self.parked = Gauge(
            "flowlog_parked_flows",
            "Flows waiting on a polling node's operation, parked in this process.",
            registry=self.registry,
        )
        self.polls = Counter(
            "flowlog_parked_polls", "Polls of parked flows made by this process.",
            registry=self.registry,
        )  # fmt: skip
        self._polls_seen = 0
        self.fire_delay = Histogram(
            "flowlog_schedule_fire_delay_seconds",
            "How late schedules' flows were made by this process's scheduler (after the fire "
            "time and its jitter).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.reads = Counter(
            "flowlog_reads",
            "Requests' reads by the server that answered them (a replica, or primary) and why "
            "(replica; for the primary: no_replica, waited, replica_failed).",
            ["server", "why"], registry=self.registry,
        )  # fmt: skip
        self.replica_lag = Gauge(
            "flowlog_replica_lag_seconds",
            "How far each replica is behind the primary (absent while it is down).",
            ["replica"], registry=self.registry,
        )  # fmt: skip
        self.replica_up = Gauge(
            "flowlog_replica_up",
            "Whether reads may use each replica (1), or it is down, lagging or foreign (0).",
            ["replica"], registry=self.registry,
        )  # fmt: skip
        self.tasks = Gauge(
            "flowlog_task_queue_tasks",
            "Tasks on each queue (every tenant's) by state: offered (waiting for a worker), "
            "later (a poll's next time), held (leased by a worker), paused (stopped flows).",
            ["queue", "state"], registry=self.registry,
        )  # fmt: skip
        self.task_age = Gauge(
            "flowlog_task_queue_oldest_seconds",
            "How long the oldest task offered on each queue has waited for a worker.",
            ["queue"], registry=self.registry,
        )  # fmt: skip
        self.task_workers = Gauge(
            "flowlog_task_queue_workers", "Workers seen on each queue in the last minute.",
            ["queue"], registry=self.registry,
        )  # fmt: skip
        self.flows_waiting = Gauge(
            "flowlog_flows_waiting",
            "Flows waiting on flow control now (every tenant's), by kind of limit (concurrency: "
            "a definition's or a node's; rate) and definition.",
            ["limit", "definition"], registry=self.registry,
        )  # fmt: skip
        self.awaiting_version = Gauge(
            "flowlog_flows_awaiting_version",
            "Flows waiting for a definition version that no running process has (every "
            "tenant's), by definition and version: stranded by a deploy until a process with "
            "that version runs or they are migrated.",
            ["definition", "version"], registry=self.registry,
        )  # fmt: skip
        self.requests = Histogram(
            "flowlog_http_request_duration_seconds", "HTTP requests by route and status.",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.client_disconnects = Counter(
            "flowlog_http_client_disconnects", "Requests whose client hung up before the answer.",
            ["method", "route"], registry=self.registry,
        )  # fmt: skip

        self.refusals = Counter(
            "flowlog_access_refusals", "Requests refused for want of a role, by the role needed.",
            ["needed"], registry=self.registry,
        )  # fmt: skip
        self.logins = Counter(
            "flowlog_console_logins",
            "Console log-ins by method (key, oidc) and outcome (ok, refused, limited).",
            ["method", "outcome"], registry=self.registry,
        )  # fmt: skip

        self.webhook_deliveries = Counter(
            "flowlog_webhook_deliveries",
            "Webhook delivery attempts made by this process, by outcome (delivered; failed: to "
            "be tried again or dead; dead: dead-lettered at the end of the retry window).",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self._deliveries_seen = DeliveryCounts()
        self._lag_read_at = -LAG_REFRESH_SECONDS  # the first scrape reads it
        self.webhook_lag_events = Gauge(
            "flowlog_webhook_lag_events",
            "Events each webhook subscription has still to deliver: the log's events after its "
            f"cursor (counted up to {LAG_COUNT_LIMIT:,}) and its pending deliveries.",
            ["webhook"], registry=self.registry,
        )  # fmt: skip
        self.webhook_lag_seconds = Gauge(
            "flowlog_webhook_lag_seconds",
            "Age of the oldest event each webhook subscription has still to deliver (0: none).",
            ["webhook"], registry=self.registry,
        )  # fmt: skip

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).observe(seconds)
        if status == CLIENT_GONE_STATUS:
            self.client_disconnects.labels(method, route).inc()

    def observe_read(self, server: str, why: str) -> None:
        self.reads.labels(server, why).inc()

    def observe_replicas(self, replicas: Sequence[Replica]) -> None:
        self.replica_lag.clear()
        for replica in replicas:
            self.replica_up.labels(replica.name).set(1 if replica.usable else 0)
            if replica.lag_seconds is not None:
                self.replica_lag.labels(replica.name).set(replica.lag_seconds)

    def observe_node(self, definition: str, node: str, outcome: str, seconds: float) -> None:
        self.node_seconds.labels(definition, node, outcome).observe(seconds)

    async def render(
        self,
        pool: asyncpg.Pool,
        busy: int,
        parked: int = 0,
        polls: int = 0,
        deliveries: DeliveryCounts | None = None,
        concurrency_limit: int = 0,
    ) -> bytes:
        """Refreshes the gauges read from the database and the reactor's figures (``polls``:
        its parking lot's count so far; ``deliveries``: its webhook sender's counts so far),
        then renders the exposition text."""
        self.flows.clear()
        for row in await pool.fetch(Q.flows_by_status):
            self.flows.labels(row["name"], row["status"]).set(row["flows"])
        self.reactor_lag.set(await pool.fetchval(Q.reactor_lag))
        leases = await pool.fetchrow(Q.leases)
        assert leases is not None
        for state in ("held", "expired", "pending"):
            self.leases.labels(state).set(leases[state])
        self.archive_unfinished.set(await pool.fetchval(Q.archive_unfinished))
        await self._observe_queues(pool)
        self.flows_waiting.clear()  # a definition nobody waits for any more disappears
        for row in await pool.fetch(Q.flows_waiting):
            self.flows_waiting.labels(row["limit_kind"], row["definition"]).set(row["flows"])
        self.awaiting_version.clear()  # a version no flow awaits any more disappears
        for entry in await awaiting(pool):
            self.awaiting_version.labels(entry.definition, entry.version).set(entry.flows)
        await self._observe_webhooks(pool, deliveries)
        self.busy.set(busy)
        self.concurrency_limit.set(concurrency_limit)
        self.parked.set(parked)
        self.polls.inc(max(0, polls - self._polls_seen))
        self._polls_seen = max(self._polls_seen, polls)
        return generate_latest(self.registry)

    async def _observe_queues(self, pool: asyncpg.Pool) -> None:
        for gauge in (self.tasks, self.task_age, self.task_workers):
            gauge.clear()  # a queue with nothing left disappears
        for row in await pool.fetch(TQ.queues, None, WORKERS_SEEN_SECONDS):
            queue = row["queue"]
            for state, column in (("offered", "depth"), ("later", "later"), ("held", "held"),
                                  ("paused", "paused")):  # fmt: skip
                self.tasks.labels(queue, state).set(row[column])
            self.task_age.labels(queue).set(row["oldest"] or 0.0)
            self.task_workers.labels(queue).set(len(row["workers"]))

    async def _observe_webhooks(self, pool: asyncpg.Pool, counts: DeliveryCounts | None) -> None:
        if counts is not None:
            seen = self._deliveries_seen
            for outcome in ("delivered", "failed", "dead"):
                now, before = getattr(counts, outcome), getattr(seen, outcome)
                self.webhook_deliveries.labels(outcome).inc(max(0, now - before))
                setattr(seen, outcome, max(now, before))
        now = time.monotonic()
        if now - self._lag_read_at < LAG_REFRESH_SECONDS:
            return
        self._lag_read_at = now
        for gauge in (self.webhook_lag_events, self.webhook_lag_seconds):
            gauge.clear()  # a deleted subscription disappears
        for row in await pool.fetch(WQ.lag, LAG_COUNT_LIMIT):
            self.webhook_lag_events.labels(row["id"]).set(row["unread"] + row["pending"])
            self.webhook_lag_seconds.labels(row["id"]).set(row["seconds"])
