-- Schedules (docs/workflows.md, "Schedules"): each schedule is a stream `schedule-<id>` in the
-- log; this table is its projection, written by each append's own statement, and the queue
-- of the schedulers (every process with a reactor runs one): a row is due when its next fire
-- (with its jitter) has come, and leased by the scheduler that fires it. Like flow_work, the
-- lease only spares duplicate work: a fire is decided by an append to the schedule's stream
-- with its expected version, and its flow's id derives from the fire, so that one fire can
-- never start two flows.
CREATE TABLE schedules (
    id               text        COLLATE "C" PRIMARY KEY,
    tenant_id        text        NOT NULL,
    flow_name        text        NOT NULL,
    status           text        NOT NULL,  -- Active, Paused, Deleted
    spec             jsonb       NOT NULL,
    next_fire_at     timestamptz,           -- the next nominal fire time; NULL: none to come
    due_at           timestamptz,           -- when a scheduler looks at it next; NULL: never
    last_fire_at     timestamptz,
    last_flow_id     text,
    fires            bigint      NOT NULL,
    skipped          bigint      NOT NULL,
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    stream_version   bigint      NOT NULL,
    -- The schedule's state at stream_version (app/schedules/state.py, snapshot()): a scheduler
    -- folds only the events after it, not a stream that grows with every fire.
    state            jsonb       NOT NULL
);
CREATE INDEX schedules_due ON schedules (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX schedules_tenant ON schedules (tenant_id, id);

CREATE OR REPLACE FUNCTION flowlog_grant_runtime(runtime name) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    EXECUTE format('GRANT SELECT ON events, schema_migrations, callback_secret TO %I', runtime);
    EXECUTE format(
        'GRANT INSERT (stream_id, version, type, data, metadata) ON events TO %I', runtime);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON subscriptions TO %I', runtime);
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON flow_work, workflows, workflow_nodes, '
        'workflow_counts, workflow_definitions, idempotency_keys, schedules TO %I', runtime);
END;
$$;
