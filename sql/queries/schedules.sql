-- Named statements of schedules (app/schedules/).

-- name: upsert
-- The schedule's row after an append to its stream, in the append's own statement (it acts
-- only when the append did). $13: the append made the schedule (again): its creation time is
-- the append's. $14: the state's snapshot. Leases are left as they are.
INSERT INTO schedules (id, tenant_id, flow_name, status, spec, next_fire_at, due_at,
                       last_fire_at, last_flow_id, fires, skipped, stream_version,
                       created_at, updated_at, state)
SELECT $1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12, a.at, a.at, $14::jsonb
FROM (SELECT max(recorded_at) AS at FROM appended) AS a
WHERE EXISTS (SELECT 1 FROM appended)
ON CONFLICT (id) DO UPDATE
SET tenant_id = EXCLUDED.tenant_id,
    flow_name = EXCLUDED.flow_name,
    status = EXCLUDED.status,
    spec = EXCLUDED.spec,
    next_fire_at = EXCLUDED.next_fire_at,
    due_at = EXCLUDED.due_at,
    last_fire_at = EXCLUDED.last_fire_at,
    last_flow_id = EXCLUDED.last_flow_id,
    fires = EXCLUDED.fires,
    skipped = EXCLUDED.skipped,
    stream_version = EXCLUDED.stream_version,
    created_at = CASE WHEN $13 THEN EXCLUDED.created_at ELSE schedules.created_at END,
    updated_at = EXCLUDED.updated_at,
    state = EXCLUDED.state

-- name: claim
-- Up to $2 due schedules for scheduler $1, leased for $3 seconds, among those whose definition
-- is one of $4 (the scheduler's process can make their flows). SKIP LOCKED: schedulers never
-- wait for each other and never take the same row.
WITH due AS (
    SELECT id FROM schedules
    WHERE due_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())
      AND flow_name = ANY($4::text[])
    ORDER BY due_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE schedules AS s
SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $3)
FROM due
WHERE s.id = due.id
RETURNING s.id

-- name: release
-- Scheduler $2 is done with schedule $1: due next at $3 (NULL: never), and no sooner than $5
-- seconds from now by the database's clock (the scheduler's clock may be behind it), unless
-- an append (at a version other than $4) has set its due time since.
UPDATE schedules
SET lease_owner = NULL, lease_expires_at = NULL,
    due_at = CASE
        WHEN $4::bigint IS NULL OR stream_version <> $4 THEN due_at
        WHEN $3::timestamptz IS NULL THEN NULL
        ELSE greatest($3, now() + make_interval(secs => $5))
    END
WHERE id = $1 AND lease_owner = $2

-- name: next_due
-- Seconds until the next schedule of definitions $1 is claimable (database clock); NULL when
-- none is due ever.
SELECT extract(epoch FROM min(greatest(due_at, coalesce(lease_expires_at, due_at))) - now())::float8
FROM schedules
WHERE due_at IS NOT NULL AND flow_name = ANY($1::text[])

-- name: list
-- Schedules not deleted, of tenant $1 (NULL: all), by id, after id $2, $3 of them.
SELECT id, tenant_id, flow_name, status, spec, next_fire_at, due_at, last_fire_at, last_flow_id,
       fires, skipped, created_at, updated_at, stream_version
FROM schedules
WHERE status <> 'Deleted' AND ($1::text IS NULL OR tenant_id = $1) AND id > $2
ORDER BY id
LIMIT $3

-- name: count
SELECT count(*) FROM schedules WHERE status <> 'Deleted' AND ($1::text IS NULL OR tenant_id = $1)

-- name: flow_status
-- The status of the flow a schedule started last (NULL: it does not exist yet).
SELECT status FROM workflows WHERE id = $1

-- name: definition_known
-- Whether a definition of this name that tenant $2 may see (NULL: any) was ever recorded in
-- the log (by any process).
SELECT EXISTS (
    SELECT 1 FROM workflow_definitions WHERE name = $1 AND definition_visible(tenant_id, $2)
)

-- name: restore
-- A schedule's row from its stream's fold (rebuild, import): as upsert, outside an append.
-- The lease is left as it is: a scheduler holding it goes on.
INSERT INTO schedules (id, tenant_id, flow_name, status, spec, next_fire_at, due_at,
                       last_fire_at, last_flow_id, fires, skipped, stream_version,
                       created_at, updated_at, state)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb)
ON CONFLICT (id) DO UPDATE
SET tenant_id = EXCLUDED.tenant_id, flow_name = EXCLUDED.flow_name, status = EXCLUDED.status,
    spec = EXCLUDED.spec, next_fire_at = EXCLUDED.next_fire_at, due_at = EXCLUDED.due_at,
    last_fire_at = EXCLUDED.last_fire_at, last_flow_id = EXCLUDED.last_flow_id,
    fires = EXCLUDED.fires, skipped = EXCLUDED.skipped,
    stream_version = EXCLUDED.stream_version, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, state = EXCLUDED.state

-- name: all_rows
-- Every schedule's row, with the columns its stream decides (verify).
SELECT id, tenant_id, flow_name, status, spec, last_fire_at, last_flow_id, fires, skipped,
       created_at, updated_at, stream_version, state
FROM schedules ORDER BY id

-- name: snapshot
-- A schedule's state as of its row (the scheduler reads the events after stream_version).
SELECT state, stream_version, created_at, updated_at FROM schedules WHERE id = $1
