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
-- The node each listed flow ($1) is at: its latest execution; for the flows in Error ($2),
-- the latest execution in Error that no later execution of the same node followed (the
-- failure that ended the flow, not the fail handler after it, nor an attempt retried). A
-- waiting timer or callback (its action ran) has its NodeWaiting event, which is the last
-- event that changed the node's row: since when, until when. One index range per flow, and
-- one index probe into the log per running timer or callback.
SELECT c.flow_id, c.name, c.status, c.kind, w.recorded_at AS waiting_since,
       (w.data ->> 'wake_at')::timestamptz AS wake_at,
       (w.data ->> 'deadline')::timestamptz AS deadline
FROM (
    SELECT DISTINCT ON (n.flow_id) n.flow_id, n.name, n.status, n.kind, n.stream_version
    FROM workflow_nodes n
    WHERE n.flow_id = ANY($1::text[])
    ORDER BY n.flow_id,
             n.flow_id = ANY($2::text[]) AND n.status = 'Error' AND NOT EXISTS (
                 SELECT FROM workflow_nodes later
                 WHERE later.flow_id = n.flow_id AND later.sequence > n.sequence
                   AND later.node_key = n.node_key) DESC,
             n.sequence DESC
) c
LEFT JOIN LATERAL (
    SELECT e.recorded_at, e.data FROM events e
    WHERE c.status = 'Processing' AND c.kind IN ('timer', 'callback')
      AND e.stream_id = 'flow-' || c.flow_id AND e.version = c.stream_version
      AND e.type = 'NodeWaiting'
    LIMIT 1  -- a key lookup: never flattened into a join that could scan the log
) w ON true

-- name: waiting_flows
-- One page of the flows whose node waits on a callback ($1 = 'callback': for a person or a
-- service to complete it) or a timer ('timer'), with the list's filters (each NULL: any; $2
-- status, $3 definition, $4 bizId, $5 bizType, $6 tenant, $7..$8 created range), newest
-- first after the keyset cursor ($9, $10), $11 rows from $12; every row carries how many
-- flows match (one row of NULLs but the total when the page is empty). Driven by the running
-- nodes (the partial index workflow_nodes_running_idx), each checked against its flow (primary
-- key) and its NodeWaiting event (the log's unique (stream, version) key): the cost follows
-- the number of running nodes, not of flows. A flow being canceled waits for nothing.
WITH matching AS MATERIALIZED (
    SELECT w.id, w.created_at
    FROM workflow_nodes n
    -- Two key lookups per running node. LIMIT keeps each subquery apart: flattened into
    -- joins, a generic plan (the optional filters unknown) scanned every flow, or every
    -- NodeWaiting of the log, instead.
    CROSS JOIN LATERAL (
        SELECT FROM events e
        WHERE e.stream_id = 'flow-' || n.flow_id AND e.version = n.stream_version
          AND e.type = 'NodeWaiting'
        LIMIT 1
    ) waited
    CROSS JOIN LATERAL (
        SELECT f.id, f.created_at FROM workflows f
        WHERE f.id = n.flow_id
          AND f.status <> 'Canceling'
          AND ($2::text IS NULL OR f.status = $2)
          AND ($3::text IS NULL OR f.name = $3)
          AND ($4::text IS NULL OR f.biz_id = $4)
          AND ($5::text IS NULL OR f.biz_type = $5)
          AND ($6::text IS NULL OR f.tenant_id = $6)
          AND ($7::timestamptz IS NULL OR f.created_at >= $7)
          AND ($8::timestamptz IS NULL OR f.created_at < $8)
        LIMIT 1
    ) w
    WHERE n.status = 'Processing' AND n.kind = $1::text
)
SELECT t.total, w.id, w.name, w.biz_id, w.biz_type, w.status, w.tenant_id,
       w.definition_version, w.context, w.error_code, w.error_message, w.created_at,
       w.updated_at, w.stream_version, w.parent_id, w.parent_node_id, w.child_index, w.branch
FROM (SELECT count(*) AS total FROM matching) t
LEFT JOIN LATERAL (
    SELECT m.id FROM matching m
    WHERE $9::timestamptz IS NULL OR (m.created_at, m.id) < ($9, $10::text)
    ORDER BY m.created_at DESC, m.id DESC
    LIMIT $11 OFFSET $12
) p ON true
LEFT JOIN workflows w ON w.id = p.id
ORDER BY w.created_at DESC, w.id DESC

-- name: flows_waiting_slots
-- What the listed flows $1 (of tenant $2; NULL: any) wait for on flow control: the slots they
-- wait for, with how many wait ahead of each and how many hold it, and the starts they reserved
-- under rate limits (their time); as admission's waiting_for asks it of one flow. Each line
-- (scope, key value) the page's flows stand in is read once, not once per flow: its holders
-- (a range of the primary key), and its waiters in order up to the last of the page's (the
-- partial index flow_slots_waiting_idx, already in that order), numbered. A page of 25 flows
-- at the back of a line of 100,000 costs one walk of the line, not 25.
WITH mine AS MATERIALIZED (
    SELECT s.flow_id, s.scope, s.key_value, s.queued_at FROM flow_slots s
    WHERE s.flow_id = ANY($1::text[]) AND NOT s.holding
      AND ($2::text IS NULL OR s.tenant_id = $2)
)
SELECT r.flow_id, l.scope, l.key_value,
       CASE WHEN l.scope LIKE 'rate:%' THEN r.queued_at END AS starts_at, r.ahead, l.holders
FROM (
    SELECT m.scope, m.key_value, max(m.queued_at) AS last_at, array_agg(m.flow_id) AS flows,
           (SELECT count(*) FROM flow_slots h
            WHERE h.scope = m.scope AND h.key_value = m.key_value AND h.holding) AS holders
    FROM mine m GROUP BY m.scope, m.key_value
) l
CROSS JOIN LATERAL (
    SELECT ranked.flow_id, ranked.queued_at, ranked.ahead FROM (
        SELECT w.flow_id, w.queued_at,
               row_number() OVER (ORDER BY w.queued_at, w.flow_id) - 1 AS ahead
        FROM flow_slots w
        WHERE w.scope = l.scope AND w.key_value = l.key_value AND NOT w.holding
          AND w.queued_at <= l.last_at
    ) ranked
    WHERE ranked.flow_id = ANY(l.flows)
) r
ORDER BY r.flow_id, l.scope

-- name: definition_version
SELECT name, version, node_names, definition, registered_at, tenant_id
FROM workflow_definitions WHERE version = $1

-- name: definition_names
-- The names of the definitions tenant $1 may see (NULL: all).
SELECT DISTINCT name FROM workflow_definitions WHERE definition_visible(tenant_id, $1)
ORDER BY name

-- name: child_status_counts
-- The children of flow $1 by status, for the counts bar of a list filtered by parent (the
-- sharded counters know no parent): each other filter optional ($2 tenant, $3 definition,
-- $4 bizType). One range of the index on parent_id.
SELECT status, count(*)::bigint AS flows
FROM workflows
WHERE parent_id = $1
  AND ($2::text IS NULL OR tenant_id = $2)
  AND ($3::text IS NULL OR name = $3)
  AND ($4::text IS NULL OR biz_type = $4)
GROUP BY status

-- name: node_named
-- A node execution's name and key (the parent's node that started a child).
SELECT name, node_key FROM workflow_nodes WHERE id = $1

-- name: streams_events
-- The events of streams $1, each oldest first (the few branches of a parallel node, folded
-- for their lanes).
SELECT stream_id, version, type, data, metadata, recorded_at
FROM events
WHERE stream_id = ANY($1::text[])
ORDER BY stream_id, version

-- name: tasks_held
-- The tasks that workers hold now in tenant $1's queues (NULL: every tenant's), held longest
-- first, at most $2: which worker holds which flow's node, since when, until when its lease
-- runs. Offers are the unfinished flows' flow_work rows (migration 0013): a scan of those.
SELECT w.queue, w.task_worker AS worker, w.flow_id, wf.name AS flow_name, wf.biz_id,
       n.name AS node_name, w.task_claimed_at AS claimed_at, w.task_expires_at AS expires_at,
       w.status
FROM flow_work w
JOIN workflows wf ON wf.id = w.flow_id
LEFT JOIN workflow_nodes n ON n.id = w.task_node_id
WHERE w.queue IS NOT NULL AND w.task_worker IS NOT NULL
  AND ($1::text IS NULL OR w.tenant_id = $1)
ORDER BY w.task_claimed_at, w.flow_id
LIMIT $2

-- name: queues_last_seen
-- When a worker last asked each queue of tenant $1 (NULL: every tenant's) for work, however
-- long ago (the task API forgets workers after a day): a queue whose workers went away.
SELECT queue, max(last_seen) AS last_seen
FROM task_workers
WHERE $1::text IS NULL OR tenant_id = $1
GROUP BY queue
