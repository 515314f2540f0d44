-- Named statements of callback nodes that wait for a CloudEvent (app/triggers/waits.py,
-- app/triggers/wait_rows.py; the table: sql/migrations/0021_event_waits.sql). The inline
-- projection's own statements are in workflow.sql (waits_insert, waits_delete).

-- name: waits_matching
-- The waits of tenant $1 for events of type $2 whose match the event's data $3 contains
-- (JSON containment: every key of the match equal in the data, objects nested, numbers as
-- numbers), at most $4 of them, after node id $5 (a page). The index on (tenant_id,
-- event_type) finds the tenant's waits for the type; containment is tested on those.
SELECT node_id, flow_id FROM event_waits
WHERE tenant_id = $1 AND event_type = $2 AND $3::jsonb @> match AND node_id > $5
ORDER BY node_id
LIMIT $4

-- name: waits_lock
-- Rebuild: no append may change the table until the rows are written again (appends that
-- begin or end a wait write it in their own statement, so they wait for the commit).
LOCK TABLE event_waits IN SHARE ROW EXCLUSIVE MODE

-- name: waits_candidates
-- The flows that may wait for an event: those whose row says they run (Processing, Stopped),
-- and those the table names.
SELECT id FROM workflows WHERE status IN ('Processing', 'Stopped')
UNION
SELECT flow_id FROM event_waits

-- name: waits_clear
DELETE FROM event_waits

-- name: waits_rows
SELECT node_id, flow_id, tenant_id, event_type, match, since FROM event_waits
