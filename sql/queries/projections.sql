-- Named statements of the projections (projections/). The inline ones run inside the append's
-- own statement (AppendAlso): they read the CTE "appended", act only when it has rows, and
-- turn the placeholder time 0001-01-02 into the append's recorded time.

-- name: upsert_workflow
INSERT INTO workflows (id, name, biz_id, biz_type, status, tenant_id, definition_version,
                       context, error_code, error_message, created_at, updated_at, stream_version)
SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::jsonb,
       $9::integer, $10::text,
       CASE WHEN $11::timestamptz = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE $11 END,
       CASE WHEN $12::timestamptz = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE $12 END,
       $13::bigint
WHERE EXISTS (SELECT 1 FROM appended)
ON CONFLICT (id) DO UPDATE
SET status = EXCLUDED.status,
    context = EXCLUDED.context,
    error_code = EXCLUDED.error_code,
    error_message = EXCLUDED.error_message,
    updated_at = EXCLUDED.updated_at,
    stream_version = EXCLUDED.stream_version
WHERE workflows.stream_version < EXCLUDED.stream_version

-- name: upsert_nodes
-- The node executions the append touched: $1 is a JSON array of rows (one JSON parameter is far
-- cheaper to send from Python than sixteen parallel arrays).
INSERT INTO workflow_nodes (id, flow_id, sequence, node_key, name, kind, status, attempt,
                            operation_id, parameters, result, error_code, error_message,
                            start_time, end_time, stream_version)
SELECT n.id, n.flow_id, n.sequence, n.node_key, n.name, n.kind, n.status, n.attempt,
       n.operation_id, n.parameters, n.result, n.error_code, n.error_message,
       CASE WHEN n.start_time = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE n.start_time END,
       CASE WHEN n.end_time = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE n.end_time END,
       n.stream_version
FROM jsonb_to_recordset($1::jsonb)
     AS n(id text, flow_id text, sequence integer, node_key text, name text, kind text,
          status text, attempt integer, operation_id text, parameters text, result text,
          error_code integer, error_message text, start_time timestamptz,
          end_time timestamptz, stream_version bigint)
WHERE EXISTS (SELECT 1 FROM appended)
ON CONFLICT (id) DO UPDATE
SET status = EXCLUDED.status,
    operation_id = EXCLUDED.operation_id,
    parameters = EXCLUDED.parameters,
    result = EXCLUDED.result,
    error_code = EXCLUDED.error_code,
    error_message = EXCLUDED.error_message,
    end_time = EXCLUDED.end_time,
    stream_version = EXCLUDED.stream_version
WHERE workflow_nodes.stream_version < EXCLUDED.stream_version

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
