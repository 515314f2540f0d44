-- Named statements of the operator console (app/console/).

-- name: status_counts
-- Flows by status for the counts bar: from the sharded counters, so it costs microseconds at
-- any size. Each filter is optional (NULL: any); the counters know tenant, definition and type.
SELECT status, sum(count)::bigint AS flows
FROM workflow_counts
WHERE ($1::text IS NULL OR tenant_id = $1)
  AND ($2::text IS NULL OR name = $2)
  AND ($3::text IS NULL OR biz_type = $3)
GROUP BY status
HAVING sum(count) <> 0

-- name: definition_counts
-- Flows by definition and status (optionally one tenant's), for the definitions page.
SELECT name, status, sum(count)::bigint AS flows
FROM workflow_counts
WHERE ($1::text IS NULL OR tenant_id = $1)
GROUP BY name, status
HAVING sum(count) <> 0

-- name: current_nodes
-- The latest node execution of each listed flow (one index range per flow).
SELECT DISTINCT ON (flow_id) flow_id, name, status
FROM workflow_nodes
WHERE flow_id = ANY($1::text[])
ORDER BY flow_id, sequence DESC

-- name: definition_version
SELECT name, version, node_names, definition, registered_at, tenant_id
FROM workflow_definitions WHERE version = $1

-- name: definition_names
-- The names of the definitions tenant $1 may see (NULL: all).
SELECT DISTINCT name FROM workflow_definitions WHERE definition_visible(tenant_id, $1)
ORDER BY name
