-- Task queues (docs/workers.md): a node that names a queue is not run by a reactor but offered
-- on that queue, to workers that poll for it over the REST task API, anywhere, in any language.
--
-- The offer is the flow's flow_work row, written like every row by the append that starts the
-- node: queue and task_node_id name it (task_operation too when it is a polling node's poll),
-- offered_at orders the queue; due_at is 'infinity' while it is offered, so reactors leave it
-- alone. A worker's poll leases it in the claiming statement (task_worker, task_expires_at, and
-- due_at = task_expires_at): a lapsed lease makes the row due, a reactor claims it and records
-- the node as interrupted (40110), as it does for a lost local worker. task_claims counts the
-- leases of this offer, and each task token names the claim it came with: a token is good for
-- one claim only.
ALTER TABLE flow_work
    ADD COLUMN tenant_id       text,
    ADD COLUMN queue           text,
    ADD COLUMN task_node_id    text,
    ADD COLUMN task_operation  text,
    ADD COLUMN offered_at      timestamptz,
    ADD COLUMN priority        smallint NOT NULL DEFAULT 0,
    ADD COLUMN task_worker     text,
    ADD COLUMN task_claimed_at timestamptz,
    ADD COLUMN task_expires_at timestamptz,
    ADD COLUMN task_claims     integer  NOT NULL DEFAULT 0,
    ADD COLUMN task_details    jsonb,
    -- The idempotency key of the poll that leased it: the poll sent again answers it again.
    ADD COLUMN task_poll_key   text;

-- A poll: the oldest offered tasks of a tenant's queue, urgent first.
CREATE INDEX flow_work_offered_idx ON flow_work (tenant_id, queue, priority DESC, offered_at)
    WHERE queue IS NOT NULL AND task_worker IS NULL;

-- Workers seen by the task API (a poll or a heartbeat), for the console's queues page. Not
-- derived from the log: it says who asked, not what happened.
CREATE TABLE task_workers (
    tenant_id  text        NOT NULL,
    queue      text        NOT NULL,
    worker_id  text        NOT NULL,
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, queue, worker_id)
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
        'archived_flows, flow_children, task_workers TO %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_remove_archived(text, text[]) TO %I',
                   runtime);
END;
$$;
