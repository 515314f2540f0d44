-- Named statements of the projections (projections/). The inline ones run inside the append's
-- own statement (AppendAlso): they read the CTE "appended", act only when it has rows, and
-- turn the placeholder time 0001-01-02 into the append's recorded time.

-- name: insert_workflow
-- A new flow's row. A plain INSERT (not an upsert): the flow's first append can only happen
-- once, and an existing row would be corruption worth an error.
INSERT INTO workflows (id, name, biz_id, biz_type, status, tenant_id, definition_version,
                       context, error_code, error_message, created_at, updated_at, stream_version)
SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::jsonb,
       $9::integer, $10::text,
       CASE WHEN $11::timestamptz = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE $11 END,
       CASE WHEN $12::timestamptz = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE $12 END,
       $13::bigint
WHERE EXISTS (SELECT 1 FROM appended)

-- name: update_workflow
-- A flow's row after an append: what events change (never replacing a newer row). A plain
-- UPDATE costs less than an upsert, and when the status stays (most events) it is HOT.
UPDATE workflows
SET status = $2::text,
    context = $3::jsonb,
    error_code = $4::integer,
    error_message = $5::text,
    updated_at = (SELECT min(recorded_at) FROM appended),
    stream_version = $6::bigint
WHERE id = $1::text AND stream_version < $6::bigint AND EXISTS (SELECT 1 FROM appended)

-- name: insert_node
-- A node execution the append started.
INSERT INTO workflow_nodes (id, flow_id, sequence, node_key, name, kind, status, attempt,
                            operation_id, parameters, result, error_code, error_message,
                            start_time, end_time, stream_version)
SELECT $1::text, $2::text, $3::integer, $4::text, $5::text, $6::text, $7::text, $8::integer,
       $9::text, $10::text, $11::text, $12::integer, $13::text,
       CASE WHEN $14::timestamptz = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE $14 END,
       CASE WHEN $15::timestamptz = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE $15 END,
       $16::bigint
WHERE EXISTS (SELECT 1 FROM appended)

-- name: update_node
-- A node execution the append changed, never replacing a newer row.
UPDATE workflow_nodes
SET status = $2::text,
    operation_id = $3::text,
    parameters = $4::text,
    result = $5::text,
    error_code = $6::integer,
    error_message = $7::text,
    end_time = CASE WHEN $8::timestamptz = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE $8 END,
    stream_version = $9::bigint
WHERE id = $1::text AND stream_version < $9::bigint AND EXISTS (SELECT 1 FROM appended)

-- name: add_counts
-- Count changes in shard $2: $1 is a JSON array of {tenant_id, name, biz_type, status, change}.
INSERT INTO workflow_counts (tenant_id, name, biz_type, status, shard, count)
SELECT c.tenant_id, c.name, c.biz_type, c.status, $2::smallint, c.change
FROM jsonb_to_recordset($1::jsonb)
     AS c(tenant_id text, name text, biz_type text, status text, change bigint)
WHERE EXISTS (SELECT 1 FROM appended)
ON CONFLICT (tenant_id, name, biz_type, status, shard) DO UPDATE
SET count = workflow_counts.count + EXCLUDED.count

-- name: upsert_definition
INSERT INTO workflow_definitions (name, version, node_names, definition, registered_at)
SELECT $1::text, $2::text, $3::text[], $4::jsonb, (SELECT min(recorded_at) FROM appended)
WHERE EXISTS (SELECT 1 FROM appended)
ON CONFLICT (version) DO NOTHING

-- name: workflow
SELECT id, name, biz_id, biz_type, status, tenant_id, definition_version, context, error_code,
       error_message, created_at, updated_at, stream_version
FROM workflows WHERE id = $1

-- name: nodes_of
SELECT id, flow_id, sequence, node_key, name, kind, status, attempt, operation_id, parameters,
       result, error_code, error_message, start_time, end_time, stream_version
FROM workflow_nodes WHERE flow_id = $1 ORDER BY sequence

-- name: node_names
SELECT node_names FROM workflow_definitions WHERE version = $1

-- name: definitions
SELECT name, version, node_names, definition, registered_at
FROM workflow_definitions ORDER BY name, registered_at
