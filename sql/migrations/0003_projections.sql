-- Projections of the log for list and detail queries, and for people who query flowlog in SQL.
-- They hold nothing the log does not: `flowlog rebuild` replays the log into fresh copies and
-- swaps them in. Column meanings are a public contract (docs/sql.md): changing them is a
-- breaking change.

-- One row per flow.
CREATE TABLE workflows (
    id                 text        PRIMARY KEY,
    name               text        NOT NULL,
    biz_id             text        NOT NULL,
    biz_type           text        NOT NULL,
    status             text        NOT NULL,
    tenant_id          text        NOT NULL,
    definition_version text        NOT NULL,
    context            jsonb       NOT NULL,
    error_code         integer,
    error_message      text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    -- The version of the flow's stream this row reflects; a write never replaces a newer row.
    stream_version     bigint      NOT NULL
) WITH (fillfactor = 70);  -- room on the page for HOT updates (most events change no indexed column)

-- Newest first, alone or after an equality filter; the id breaks ties (keyset paging).
CREATE INDEX workflows_created_idx ON workflows (created_at DESC, id DESC);
CREATE INDEX workflows_tenant_created_idx ON workflows (tenant_id, created_at DESC, id DESC);
CREATE INDEX workflows_status_created_idx ON workflows (status, created_at DESC, id DESC);
CREATE INDEX workflows_name_created_idx ON workflows (name, created_at DESC, id DESC);
CREATE INDEX workflows_biz_type_created_idx ON workflows (biz_type, created_at DESC, id DESC);
CREATE INDEX workflows_biz_id_idx ON workflows (biz_id);

-- One row per node execution (each attempt of each node).
CREATE TABLE workflow_nodes (
    id             text        PRIMARY KEY,
    flow_id        text        NOT NULL,
    sequence       integer     NOT NULL,
    node_key       text        NOT NULL,
    name           text        NOT NULL,
    kind           text        NOT NULL,
    status         text        NOT NULL,
    attempt        integer     NOT NULL,
    operation_id   text,
    parameters     text,
    result         text        NOT NULL,
    error_code     integer,
    error_message  text,
    start_time     timestamptz NOT NULL,
    end_time       timestamptz,
    stream_version bigint      NOT NULL,
    CONSTRAINT workflow_nodes_flow_sequence_key UNIQUE (flow_id, sequence)
) WITH (fillfactor = 80);

-- "Which nodes run now, and since when" (stuck flows) and "what failed lately".
CREATE INDEX workflow_nodes_running_idx ON workflow_nodes (start_time) WHERE status = 'Processing';
CREATE INDEX workflow_nodes_failed_idx ON workflow_nodes (end_time) WHERE status = 'Error';

-- Flow counts by the list filters' dimensions, so that a list's total costs a few rows, not a
-- scan of a million. Spread over shards (by flow) so that concurrent appends rarely wait for
-- the same counter row; a total is the sum over shards.
CREATE TABLE workflow_counts (
    tenant_id text     NOT NULL,
    name      text     NOT NULL,
    biz_type  text     NOT NULL,
    status    text     NOT NULL,
    shard     smallint NOT NULL,
    count     bigint   NOT NULL,
    PRIMARY KEY (tenant_id, name, biz_type, status, shard)
);

-- The definitions recorded in the log (DefinitionRegistered), one row per version.
CREATE TABLE workflow_definitions (
    name          text        NOT NULL,
    version       text        PRIMARY KEY,
    node_names    text[]      NOT NULL,
    definition    jsonb       NOT NULL,
    registered_at timestamptz NOT NULL
);

CREATE INDEX workflow_definitions_name_idx ON workflow_definitions (name, registered_at DESC);
