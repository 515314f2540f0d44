-- Flows that run children (map, parallel and subflow nodes, docs/workflows.md "Children").
--
-- A child is a flow like any other whose FlowCreated names its parent: its row in workflows
-- says so (parent_id, parent_node_id: the parent's node execution that started it, its index
-- among that node's children, and for a parallel node's branch the branch's name).
ALTER TABLE workflows
    ADD COLUMN parent_id      text,
    ADD COLUMN parent_node_id text,
    ADD COLUMN child_index    integer,
    ADD COLUMN branch         text;

CREATE INDEX workflows_parent_idx ON workflows (parent_id, parent_node_id, child_index)
    WHERE parent_id IS NOT NULL;

-- A child's end, written by the append that ends it (and removed by the append that retries
-- it). The parent counts each end once: its own append that records the end (ChildrenEnded)
-- also sets harvested, in the same statement, so an end is counted once or not yet, never
-- twice and never lost. The results of a map are read from here in element order.
CREATE TABLE flow_children (
    parent_id      text        NOT NULL,
    parent_node_id text        NOT NULL,
    child_index    integer     NOT NULL,
    flow_id        text        NOT NULL,
    status         text        NOT NULL,
    context        jsonb       NOT NULL,
    -- The child's stream version at its end: a harvest marks the end it read, not a later one.
    child_version  bigint      NOT NULL,
    harvested      boolean     NOT NULL DEFAULT false,
    ended_at       timestamptz NOT NULL,
    PRIMARY KEY (parent_node_id, child_index)
);

CREATE INDEX flow_children_unharvested_idx ON flow_children (parent_node_id)
    WHERE NOT harvested;

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
        'archived_flows, flow_children TO %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_remove_archived(text, text[]) TO %I',
                   runtime);
END;
$$;
