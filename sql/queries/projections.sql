-- Named statements of the projections (projections/). The inline ones run inside the append's
-- own statement (a batch of appends to many flows, eventstore.append_batch): each takes its
-- rows as parallel arrays, acts only on the flows whose stream is in the CTE "appended", and
-- turns the placeholder time 0001-01-02 into the append's recorded time.

-- name: insert_workflows
-- New flows' rows, one per element of the parallel arrays (WorkflowRow's columns), for the
-- flows whose stream the batch appended to. A plain INSERT (not an upsert): a flow's first
-- append can only happen once, and an existing row would be corruption worth an error.
INSERT INTO workflows (id, name, biz_id, biz_type, status, tenant_id, definition_version,
                       context, error_code, error_message, created_at, updated_at, stream_version,
                       parent_id, parent_node_id, child_index, branch)
SELECT r.id, r.name, r.biz_id, r.biz_type, r.status, r.tenant_id, r.definition_version,
       r.context, r.error_code, r.error_message,
       CASE WHEN r.created_at = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE r.created_at END,
       CASE WHEN r.updated_at = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE r.updated_at END,
       r.stream_version, r.parent_id, r.parent_node_id, r.child_index, r.branch
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::jsonb[], $9::integer[], $10::text[], $11::timestamptz[], $12::timestamptz[],
            $13::bigint[], $14::text[], $15::text[], $16::integer[], $17::text[])
     AS r(id, name, biz_id, biz_type, status, tenant_id, definition_version, context,
          error_code, error_message, created_at, updated_at, stream_version, parent_id,
          parent_node_id, child_index, branch)
WHERE 'flow-' || r.id IN (SELECT stream_id FROM appended)

-- name: update_workflows
-- Flows' rows after the batch's appends: what events change (never replacing a newer row).
-- A plain UPDATE costs less than an upsert, and when the status stays (most events) it is
-- HOT. "w.id = ANY($1)" gives the planner the primary key to look rows up by, whatever it
-- guesses of the arrays' length: joined with a set alone, it could choose to scan the table.
-- A NULL context is one the append did not change: not sent, not written again (a map's
-- parent holds a list of up to 10,000 elements, and appends hundreds of times).
-- The definition version changes only with a migration (FlowMigrated); unchanged, it keeps
-- the update HOT as before.
UPDATE workflows AS w
SET status = r.status,
    definition_version = r.definition_version,
    context = coalesce(r.context, w.context),
    error_code = r.error_code,
    error_message = r.error_message,
    updated_at = (SELECT min(recorded_at) FROM appended),
    stream_version = r.stream_version
FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::integer[], $5::text[], $6::bigint[],
            $7::text[])
     AS r(id, status, context, error_code, error_message, stream_version, definition_version)
WHERE w.id = ANY($1::text[]) AND w.id = r.id AND w.stream_version < r.stream_version
  AND 'flow-' || r.id IN (SELECT stream_id FROM appended)

-- name: insert_nodes
-- Node executions the batch's appends started (NodeRow's columns).
INSERT INTO workflow_nodes (id, flow_id, sequence, node_key, name, kind, status, attempt,
                            operation_id, parameters, result, error_code, error_message,
                            start_time, end_time, stream_version)
SELECT r.id, r.flow_id, r.sequence, r.node_key, r.name, r.kind, r.status, r.attempt,
       r.operation_id, r.parameters, r.result, r.error_code, r.error_message,
       CASE WHEN r.start_time = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE r.start_time END,
       CASE WHEN r.end_time = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE r.end_time END,
       r.stream_version
FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::integer[], $9::text[], $10::text[], $11::text[], $12::integer[],
            $13::text[], $14::timestamptz[], $15::timestamptz[], $16::bigint[])
     AS r(id, flow_id, sequence, node_key, name, kind, status, attempt, operation_id,
          parameters, result, error_code, error_message, start_time, end_time, stream_version)
WHERE 'flow-' || r.flow_id IN (SELECT stream_id FROM appended)

-- name: update_nodes
-- Node executions the batch's appends changed, never replacing a newer row ($1 the node ids,
-- $2 their flows' ids; the primary key looked up as in update_workflows). The node key
-- changes only with a migration that renames it (FlowMigrated's node map).
UPDATE workflow_nodes AS n
SET status = r.status,
    node_key = r.node_key,
    operation_id = r.operation_id,
    parameters = r.parameters,
    result = r.result,
    error_code = r.error_code,
    error_message = r.error_message,
    end_time = CASE WHEN r.end_time = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE r.end_time END,
    stream_version = r.stream_version
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::integer[], $8::text[], $9::timestamptz[], $10::bigint[], $11::text[])
     AS r(id, flow_id, status, operation_id, parameters, result, error_code, error_message,
          end_time, stream_version, node_key)
WHERE n.id = ANY($1::text[]) AND n.id = r.id AND n.stream_version < r.stream_version
  AND 'flow-' || r.flow_id IN (SELECT stream_id FROM appended)

-- name: add_counts
-- Count changes: $1 is a JSON array of {flow_id, tenant_id, name, biz_type, status, shard,
-- change}; those of flows the batch appended to are summed per counter row, and the rows are
-- written in key order, so that concurrent batches wait on them in one order (no deadlock).
INSERT INTO workflow_counts (tenant_id, name, biz_type, status, shard, count)
SELECT c.tenant_id, c.name, c.biz_type, c.status, c.shard, sum(c.change)
FROM jsonb_to_recordset($1::jsonb)
     AS c(flow_id text, tenant_id text, name text, biz_type text, status text, shard smallint,
          change bigint)
WHERE 'flow-' || c.flow_id IN (SELECT stream_id FROM appended)
GROUP BY c.shard, c.tenant_id, c.name, c.biz_type, c.status
HAVING sum(c.change) <> 0
ORDER BY c.shard, c.tenant_id, c.name, c.biz_type, c.status
ON CONFLICT (tenant_id, name, biz_type, status, shard) DO UPDATE
SET count = workflow_counts.count + EXCLUDED.count

-- name: upsert_definition
-- $5: the name's owner (its first version's tenant; NULL: a definition from code).
INSERT INTO workflow_definitions (name, version, node_names, definition, registered_at, tenant_id)
SELECT $1::text, $2::text, $3::text[], $4::jsonb, (SELECT min(recorded_at) FROM appended), $5::text
WHERE EXISTS (SELECT 1 FROM appended)
ON CONFLICT (version) DO NOTHING

-- name: workflow
SELECT id, name, biz_id, biz_type, status, tenant_id, definition_version, context, error_code,
       error_message, created_at, updated_at, stream_version, parent_id, parent_node_id,
       child_index, branch
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

-- name: children_counts
-- How many children of flow $1 are in each status, by the node execution that started them.
SELECT parent_node_id, status, count(*) AS n FROM workflows
WHERE parent_id = $1 GROUP BY parent_node_id, status

-- name: children_listed
-- The children of flow $1 started by node executions $2 (parallel and subflow nodes': a
-- few each), in index order.
SELECT id, parent_node_id, child_index, branch, status FROM workflows
WHERE parent_id = $1 AND parent_node_id = ANY($2::text[])
ORDER BY parent_node_id, child_index
LIMIT 1000
