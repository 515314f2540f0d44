-- Named statements of rebuild and verify (projections/rebuild.py, projections/verify.py).
-- The projection tables are rebuilt into "<table>_rebuild" copies and swapped in.

-- name: bulk_snapshot
-- The snapshot the bulk reads in (as text, to hand to the queries below), and its read
-- horizon: every transaction below this id has ended, so events below it are final.
SELECT pg_current_snapshot()::text AS snapshot, pg_snapshot_xmin(pg_current_snapshot()) AS horizon

-- name: export_snapshot
-- The bulk's snapshot, for a rebuild's jobs to read in too (SET TRANSACTION SNAPSHOT): valid
-- while the bulk's transaction is open.
SELECT pg_export_snapshot()

-- name: checkpoint_below
-- The last event of the log, in log order, among transactions below $1.
SELECT transaction_id, position FROM events
WHERE transaction_id < $1::xid8
ORDER BY transaction_id DESC, position DESC
LIMIT 1

-- name: workflows_by_id
SELECT id, name, biz_id, biz_type, status, tenant_id, definition_version, context, error_code,
       error_message, created_at, updated_at, stream_version, parent_id, parent_node_id,
       child_index, branch
FROM workflows WHERE id = ANY($1::text[])

-- name: nodes_by_flow
SELECT id, flow_id, sequence, node_key, name, kind, status, attempt, operation_id, parameters,
       result, error_code, error_message, start_time, end_time, stream_version
FROM workflow_nodes WHERE flow_id = ANY($1::text[])

-- name: workflow_count
SELECT count(*) FROM workflows

-- name: orphan_workflows
-- Rows of flows that have no stream (at most 100).
SELECT w.id FROM workflows w
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = $1 || w.id)
LIMIT 100

-- name: counts_drift
-- Differences between the counters and a count of the rows, by dimension.
WITH counted AS (
    SELECT tenant_id, name, biz_type, status, sum(count) AS n
    FROM workflow_counts GROUP BY tenant_id, name, biz_type, status
), actual AS (
    SELECT tenant_id, name, biz_type, status, count(*) AS n
    FROM workflows GROUP BY tenant_id, name, biz_type, status
)
SELECT coalesce(c.tenant_id, a.tenant_id) AS tenant_id, coalesce(c.name, a.name) AS name,
       coalesce(c.biz_type, a.biz_type) AS biz_type, coalesce(c.status, a.status) AS status,
       coalesce(c.n, 0) AS counted, coalesce(a.n, 0) AS actual
FROM counted c FULL JOIN actual a USING (tenant_id, name, biz_type, status)
WHERE coalesce(c.n, 0) <> coalesce(a.n, 0)

-- name: all_definitions
SELECT name, version, node_names, definition, registered_at, tenant_id FROM workflow_definitions

-- name: unseen_by_snapshot
-- Which of the transaction ids $1 the bulk's snapshot $2 did not see (PostgreSQL's own rule).
SELECT coalesce(array_agg(DISTINCT x), '{}') FROM unnest($1::xid8[]) AS x
WHERE NOT pg_visible_in_snapshot(x, $2::text::pg_snapshot)

-- name: events_unseen_after
-- Every committed event after checkpoint ($1, $2) that the bulk's snapshot $3 did not see, in
-- log order, without waiting for the horizon: only used while the projection tables are
-- locked, when no flow append can commit.
SELECT position, transaction_id, stream_id, version, type, data, metadata, recorded_at
FROM events
WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
  AND NOT pg_visible_in_snapshot(transaction_id, $3::text::pg_snapshot)
ORDER BY transaction_id, position

-- name: drop_copies
DROP TABLE IF EXISTS workflows_rebuild, workflow_nodes_rebuild, workflow_counts_rebuild,
                     workflow_definitions_rebuild

-- name: create_copies
-- Same columns, defaults and checks as the live tables, without their indexes (nor the keys
-- and unique constraints they back): the bulk loads faster into bare tables, and the indexes
-- are built once after it (index_builds), each in one sorted pass.
CREATE TABLE workflows_rebuild (LIKE workflows INCLUDING ALL EXCLUDING INDEXES);
CREATE TABLE workflow_nodes_rebuild (LIKE workflow_nodes INCLUDING ALL EXCLUDING INDEXES);
CREATE TABLE workflow_counts_rebuild (LIKE workflow_counts INCLUDING ALL EXCLUDING INDEXES);
CREATE TABLE workflow_definitions_rebuild (LIKE workflow_definitions INCLUDING ALL EXCLUDING INDEXES)

-- name: index_builds
-- The statements that give the copy $2 every index of the live table $1 (as LIKE ... INCLUDING
-- INDEXES would): a key or unique constraint as a constraint, any other index as an index.
-- Made of the catalog's own definitions; the names are PostgreSQL's defaults until the swap
-- renames them after the live ones.
SELECT CASE WHEN c.contype IS NOT NULL
            THEN format('ALTER TABLE %I ADD %s', $2::text, pg_get_constraintdef(c.oid))
            ELSE format('CREATE %sINDEX ON %I USING %s',
                        CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END, $2::text,
                        regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING ', ''))
       END AS statement
FROM pg_index i
LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                         AND c.contype IN ('p', 'u', 'x')
WHERE i.indrelid = $1::regclass
ORDER BY i.indexrelid

-- name: table_options
-- Storage options (fillfactor) of table $1, to give its copy the same.
SELECT coalesce(array_to_string(reloptions, ', '), '') FROM pg_class WHERE oid = $1::regclass

-- name: indexes_of
-- Name, uniqueness and definition (from USING on) of every index of table $1.
SELECT i.indexrelid::regclass::text AS name,
       regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING ', '') AS definition
FROM pg_index i WHERE i.indrelid = $1::regclass

-- name: upsert_workflows_copy
-- Catch-up: flows (JSON array of rows) into the copy, never replacing a newer row.
INSERT INTO workflows_rebuild
SELECT * FROM jsonb_populate_recordset(NULL::workflows_rebuild, $1::jsonb)
ON CONFLICT (id) DO UPDATE
SET status = EXCLUDED.status, context = EXCLUDED.context, error_code = EXCLUDED.error_code,
    error_message = EXCLUDED.error_message, updated_at = EXCLUDED.updated_at,
    stream_version = EXCLUDED.stream_version
WHERE workflows_rebuild.stream_version < EXCLUDED.stream_version

-- name: upsert_nodes_copy
INSERT INTO workflow_nodes_rebuild
SELECT * FROM jsonb_populate_recordset(NULL::workflow_nodes_rebuild, $1::jsonb)
ON CONFLICT (id) DO UPDATE
SET status = EXCLUDED.status, operation_id = EXCLUDED.operation_id,
    parameters = EXCLUDED.parameters, result = EXCLUDED.result,
    error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message,
    end_time = EXCLUDED.end_time, stream_version = EXCLUDED.stream_version
WHERE workflow_nodes_rebuild.stream_version < EXCLUDED.stream_version

-- name: upsert_definitions_copy
INSERT INTO workflow_definitions_rebuild
SELECT * FROM jsonb_populate_recordset(NULL::workflow_definitions_rebuild, $1::jsonb)
ON CONFLICT (version) DO NOTHING

-- name: count_copy
-- The counts of the rebuilt flows (one shard: a total is a sum over shards anyway); returns
-- how many flows the rebuilt tables hold.
WITH counted AS (
    INSERT INTO workflow_counts_rebuild (tenant_id, name, biz_type, status, shard, count)
    SELECT tenant_id, name, biz_type, status, 0, count(*)
    FROM workflows_rebuild GROUP BY tenant_id, name, biz_type, status
    RETURNING count
)
SELECT coalesce(sum(count), 0)::bigint FROM counted

-- name: lock_live
-- Flow appends write these tables in the append's own statement: while they are locked, no
-- flow event can commit, and appends wait (briefly) for the swap.
LOCK TABLE workflows, workflow_nodes, workflow_counts, workflow_definitions
IN ACCESS EXCLUSIVE MODE

-- name: swap
-- Statements waiting on the old tables find the new ones by name once this commits.
DROP TABLE workflows, workflow_nodes, workflow_counts, workflow_definitions;
ALTER TABLE workflows_rebuild RENAME TO workflows;
ALTER TABLE workflow_nodes_rebuild RENAME TO workflow_nodes;
ALTER TABLE workflow_counts_rebuild RENAME TO workflow_counts;
ALTER TABLE workflow_definitions_rebuild RENAME TO workflow_definitions

-- name: copy_grants
-- The grants of each live table of $1 onto its copy (name + suffix $2): the runtime roles',
-- and any other role's; a new table has none (sql/migrations/0006_runtime_role.sql).
SELECT flowlog_copy_grants(live::regclass, (live || $2)::regclass)
FROM unnest($1::text[]) AS live
