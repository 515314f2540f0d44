-- Named statements of the REST API (app/api/queries.py): metrics, definitions, bulk actions.

-- name: flows_by_status
SELECT name, status, sum(count)::bigint AS flows
FROM workflow_counts GROUP BY name, status HAVING sum(count) <> 0

-- name: reactor_lag
-- How long the oldest due flow that nobody holds has waited (0 when none waits).
SELECT coalesce(extract(epoch FROM now() - min(due_at)), 0)::float8
FROM flow_work
WHERE due_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())

-- name: leases
SELECT count(*) FILTER (WHERE lease_owner IS NOT NULL AND lease_expires_at >= now()) AS held,
       count(*) FILTER (WHERE lease_owner IS NOT NULL AND lease_expires_at < now()) AS expired,
       count(*) AS pending
FROM flow_work

-- name: archive_unfinished
-- How long the oldest archive not yet through its removal has been under way (0 when none);
-- runs carry unfinished archives on, so one that stays names runs that keep failing.
SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
FROM archives
WHERE status <> 'Removed'

-- name: flows_waiting
-- Flows waiting on flow control now (docs/workers.md, "Flow control"): their rows in
-- flow_slots that hold nothing (a place in a concurrency limit's line, or a rate limit's
-- reserved start), by kind of limit and by the definition their scope names ('flow:<name>',
-- 'node:<name>/<node key>', 'rate:<name>/<node key>').
SELECT CASE WHEN scope LIKE 'rate:%' THEN 'rate' ELSE 'concurrency' END AS limit_kind,
       CASE WHEN scope LIKE 'flow:%' THEN substr(scope, 6)
            -- Up to the last '/': a limited node's key has none (a definition's name may).
            ELSE regexp_replace(substr(scope, 6), '/[^/]*$', '') END AS definition,
       count(DISTINCT flow_id)::bigint AS flows
FROM flow_slots
WHERE NOT holding
GROUP BY 1, 2

-- name: definitions_named
-- The versions of definition $1, if tenant $2 may see it (NULL: every definition is visible).
SELECT name, version, node_names, definition, registered_at
FROM workflow_definitions WHERE name = $1 AND definition_visible(tenant_id, $2)
ORDER BY registered_at

-- name: definitions
-- Every version of the definitions tenant $1 may see (NULL: all).
SELECT name, version, node_names, registered_at
FROM workflow_definitions WHERE definition_visible(tenant_id, $1)
ORDER BY name, registered_at

-- name: tenants_of
-- The tenant of each named flow that exists (bulk actions check who may touch which).
SELECT id, tenant_id FROM workflows WHERE id = ANY($1::text[])
