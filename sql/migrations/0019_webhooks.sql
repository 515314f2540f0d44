-- Webhook subscriptions (docs/webhooks.md): the log pushed out to other systems.
--
-- Each subscription is a stream `webhook-<id>` in the log (WebhookCreated, WebhookUpdated,
-- WebhookPaused, WebhookResumed, WebhookDeleted, WebhookReplayed, ...), and `webhooks` is its
-- projection, written by each append's own statement and rebuilt from the log. Its secret is
-- never stored: it is derived from the installation's secret (`callback_secret`), the
-- subscription's id and `secret_version` (app/webhooks/signing.py).
CREATE TABLE webhooks (
    id             text        COLLATE "C" PRIMARY KEY,
    tenant_id      text        NOT NULL,
    url            text        NOT NULL,
    -- Event types delivered (`FlowFailed`, `NodeFailed`, ...); never empty.
    events         text[]      NOT NULL CHECK (cardinality(events) > 0),
    -- Only flows of these definitions / with these statuses after the event; NULL: any.
    definitions    text[],
    statuses       text[],
    description    text        NOT NULL DEFAULT '',
    state          text        NOT NULL CHECK (state IN ('active', 'paused', 'deleted')),
    secret_version integer     NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL,
    created_by     text        NOT NULL,
    updated_at     timestamptz NOT NULL,
    updated_by     text        NOT NULL,
    stream_version bigint      NOT NULL
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant_id, created_at DESC, id);

-- Delivery. A subscription's cursor is the eventstore subscription named `webhook-<id>` (its
-- checkpoint in `subscriptions`, registered by the create's own statement at the log's "now").
-- Reading the log from the cursor, each event the subscription wants becomes a row here in the
-- cursor's own transaction (exactly once); rows leave when delivered. Not events: delivery is
-- live state, as `flow_work` is, and a rebuild or an import leaves it alone.
CREATE TABLE webhook_deliveries (
    webhook_id      text        COLLATE "C" NOT NULL,
    -- The event's log position: with the subscription's id, the delivery's `webhook-id`, the
    -- same for every attempt and every replay of that event.
    position        bigint      NOT NULL,
    stream_id       text        COLLATE "C" NOT NULL,
    event_type      text        NOT NULL,
    -- The flow's status after the event (part of the payload, and what `statuses` filters).
    flow_status     text,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    enqueued_at     timestamptz NOT NULL DEFAULT now(),
    first_failed_at timestamptz,
    last_attempt_at timestamptz,
    -- The receiver's last answer: its HTTP status (NULL: no answer, e.g. refused or timed
    -- out) and the first KB of its body, or the error.
    last_status     integer,
    last_answer     text,
    dead_at         timestamptz,
    PRIMARY KEY (webhook_id, position)
);
CREATE INDEX webhook_deliveries_lane ON webhook_deliveries (webhook_id, stream_id, position)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (webhook_id, dead_at DESC, position)
    WHERE state = 'dead';

-- One row per (subscription, flow) with pending deliveries: the lane's lease is what makes
-- one delivery per subscription and flow at a time, in the flow's order, across processes.
CREATE TABLE webhook_lanes (
    webhook_id   text        COLLATE "C" NOT NULL,
    stream_id    text        COLLATE "C" NOT NULL,
    due_at       timestamptz NOT NULL,
    owner        text,
    leased_until timestamptz,
    PRIMARY KEY (webhook_id, stream_id)
);
CREATE INDEX webhook_lanes_due ON webhook_lanes (due_at);

-- A replay from a time finds the events recorded since then without walking the log from its
-- start. BRIN: the events are written in time order, and a summary per block range costs an
-- append next to nothing (a btree would cost each append an index insert).
CREATE INDEX events_recorded_at_brin ON events USING brin (recorded_at);

-- What the console and the metrics show per subscription: counters and the last outcome.
CREATE TABLE webhook_status (
    webhook_id        text        COLLATE "C" PRIMARY KEY,
    delivered         bigint      NOT NULL DEFAULT 0,
    failed_attempts   bigint      NOT NULL DEFAULT 0,
    dead              bigint      NOT NULL DEFAULT 0,
    last_delivered_at timestamptz,
    last_failed_at    timestamptz,
    last_status       integer,
    last_answer       text,
    -- Set when a delivery was dead-lettered, cleared by the next success.
    failing           boolean     NOT NULL DEFAULT false
);

CREATE OR REPLACE FUNCTION flowlog_grant_runtime(runtime name) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    EXECUTE format('GRANT SELECT ON events, schema_migrations, callback_secret, log_removals, '
                   'archive_retention TO %I', runtime);
    EXECUTE format(
        'GRANT INSERT (stream_id, version, type, data, metadata) ON events TO %I', runtime);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON subscriptions TO %I', runtime);
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON flow_work, workflows, workflow_nodes, '
        'workflow_counts, workflow_definitions, idempotency_keys, schedules, archives, '
        'archived_flows, flow_children, task_workers, flow_slots, rate_limits, '
        'process_versions, webhooks, webhook_deliveries, webhook_lanes, webhook_status '
        'TO %I', runtime);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON api_keys TO %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_remove_archived(text, text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_wakes(text[], text[], text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_take(text, text, text, text, '
                   'timestamptz, integer) TO %I', runtime);
END;
$$;
