-- The reactor's pending work: one row per flow that has something to do, derived from the
-- flow's events and maintained in the same transaction as every append to the flow's stream.
-- Reactors claim due rows with FOR UPDATE SKIP LOCKED and hold a lease while they work.
-- Like every derived table, it can be rebuilt from the log.

CREATE TABLE flow_work (
    flow_id            text        PRIMARY KEY,
    definition_name    text        NOT NULL,
    -- Reactors only claim flows whose definition version they have registered.
    definition_version text        NOT NULL,
    -- The flow's status when the row was computed (the heartbeat reports it to the worker,
    -- which is how a running executor learns of a cancel).
    status             text        NOT NULL,
    due_at             timestamptz NOT NULL,
    stream_version     bigint      NOT NULL,
    lease_owner        text,
    lease_expires_at   timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX flow_work_due_idx ON flow_work (due_at);
