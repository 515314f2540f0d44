-- Named statements of audit (app/audit/): history, replay, export, import, definition checks.

-- name: history
-- A flow's events with who, why and a summary (sql/migrations/0004_audit.sql), a version range.
SELECT version, "position", recorded_at, type, actor, reason, request_id, trace_id, summary,
       data, metadata
FROM flow_history($1)
WHERE version BETWEEN $2 AND $3
ORDER BY version

-- name: state_at_version
SELECT flow_state($1, $2, NULL)

-- name: state_as_of
SELECT flow_state($1, NULL, $2)

-- name: export_source
SELECT current_database() AS database, current_setting('server_version') AS "serverVersion"

-- name: export_stream
-- One flow and every flow under it (its map's, parallel's and subflow's children, and theirs):
-- a tree moves together. In the log's order.
WITH RECURSIVE tree AS (
    SELECT $1::text AS id
    UNION
    SELECT w.id FROM workflows w JOIN tree t ON w.parent_id = t.id
)
SELECT "position", stream_id, version, type, data, metadata, recorded_at
FROM events WHERE stream_id IN (SELECT 'flow-' || id FROM tree)
ORDER BY transaction_id, "position"

-- name: export_stream_count
WITH RECURSIVE tree AS (
    SELECT $1::text AS id
    UNION
    SELECT w.id FROM workflows w JOIN tree t ON w.parent_id = t.id
)
SELECT count(*) FROM events WHERE stream_id IN (SELECT 'flow-' || id FROM tree)

-- name: export_range
-- The log in its order (see docs/eventstore.md), optionally the events recorded in [$1, $2).
SELECT "position", stream_id, version, type, data, metadata, recorded_at
FROM events
WHERE ($1::timestamptz IS NULL OR recorded_at >= $1)
  AND ($2::timestamptz IS NULL OR recorded_at < $2)
ORDER BY transaction_id, "position"

-- name: export_range_count
SELECT count(*) FROM events
WHERE ($1::timestamptz IS NULL OR recorded_at >= $1)
  AND ($2::timestamptz IS NULL OR recorded_at < $2)

-- name: import_lock
-- No append may slip in while the log is loaded (appends wait; reads go on).
LOCK TABLE events IN EXCLUSIVE MODE

-- name: import_has_events
SELECT EXISTS (SELECT 1 FROM events)

-- name: import_broken_streams
-- Streams that do not run 1..N without a gap (checked before the import commits).
SELECT stream_id, min(version) AS first, max(version) AS last, count(*) AS events
FROM events GROUP BY stream_id
HAVING min(version) <> 1 OR max(version) <> count(*)
ORDER BY stream_id LIMIT 5

-- name: import_unfinished_flows
SELECT id FROM workflows WHERE status NOT IN ('Finished', 'Error', 'Canceled')

-- name: import_work
-- An imported flow's pending work (the target is new: nothing holds a lease on it); a task
-- its running node offers on queue $8 (node $9, operation $10) is offered again.
INSERT INTO flow_work (flow_id, definition_name, definition_version, status, due_at, stream_version,
                       tenant_id, queue, task_node_id, task_operation, offered_at, priority)
VALUES ($1, $2, $3, $4, CASE WHEN $8::text IS NULL THEN $5::timestamptz ELSE 'infinity' END, $6, $7, $8, $9,
        $10, CASE WHEN $8::text IS NOT NULL THEN $5::timestamptz END, $11)

-- name: check_flows
-- The flows of a definition, newest first, to replay against a new version of it.
SELECT id, definition_version, status FROM workflows
WHERE name = $1 ORDER BY created_at DESC, id DESC LIMIT $2

-- name: history_of
-- The same lines for an archived flow's events ($1: a JSON array of the export format's
-- event objects, read from its archive file).
SELECT version, "position", recorded_at, type, actor, reason, request_id, trace_id, summary,
       data, metadata
FROM flow_history_of($1::jsonb)
ORDER BY version

-- name: migration_versions
-- The recorded versions of definition $1 (with their descriptions), if tenant $2 may see it
-- (NULL: every definition is visible).
SELECT version, definition
FROM workflow_definitions WHERE name = $1 AND definition_visible(tenant_id, $2)

-- name: migration_lock
-- One migration at a time per definition name ($1), for as long as the transaction that
-- takes it lasts: a transaction that takes no row lock and writes nothing has no transaction
-- id, so holding it open holds back no reader's horizon. Two keys: the first keeps these
-- locks apart from any other advisory lock of flowlog's.
SELECT pg_try_advisory_xact_lock(hashtext('flowlog-migration'), hashtext($1))

-- name: migration_flows
-- The flows of definition $1 on versions $2 (tenant $3's only, unless NULL), by business type
-- $4, status $5 (NULL: those that have not ended) and ids $6 (NULL: any), oldest first, at
-- most $7.
SELECT id
FROM workflows
WHERE name = $1 AND definition_version = ANY($2::text[])
  AND ($3::text IS NULL OR tenant_id = $3)
  AND ($4::text IS NULL OR biz_type = $4)
  AND CASE WHEN $5::text IS NULL THEN status NOT IN ('Finished', 'Error', 'Canceled')
           ELSE status = $5 END
  AND ($6::text[] IS NULL OR id = ANY($6::text[]))
ORDER BY created_at, id
LIMIT $7
