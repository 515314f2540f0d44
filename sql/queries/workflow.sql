-- Named statements of the workflow engine (app/workflow/).

-- name: work_upsert
-- Flows' pending work after the batch's appends (parallel arrays, one entry per flow), run
-- inside the appends' own statement: only for the flows whose stream it appended to. A lease
-- held by a worker still running the flow is kept. A row already due and still due keeps its
-- due time: the flow keeps its place in the queue, and the indexed column does not change,
-- so the update can be HOT (no new index entries). Rows in flow id order, as the heartbeat
-- locks them: the two never wait on each other in opposite orders.
--
-- A flow whose running node is offered on a task queue ($8: the queue, $9 the node, $10 the
-- operation of a polling node's poll) is no reactor's: its row is due at 'infinity' and the
-- append that offers it gives up the reactor's lease (a poll may take it the moment it
-- commits). While a worker holds that same task, the worker's lease (and the row's due time,
-- its end) is kept; any other task, or none, ends it.
INSERT INTO flow_work (flow_id, definition_name, definition_version, status, due_at,
                       stream_version, tenant_id, queue, task_node_id, task_operation, offered_at,
                       priority)
SELECT r.flow_id, r.definition_name, r.definition_version, r.status,
       CASE WHEN r.queue IS NULL THEN r.due_at ELSE 'infinity' END, r.stream_version,
       r.tenant_id, r.queue, r.task_node_id, r.task_operation,
       CASE WHEN r.queue IS NOT NULL THEN r.due_at END, r.priority
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::smallint[])
     AS r(flow_id, definition_name, definition_version, status, due_at, stream_version,
          tenant_id, queue, task_node_id, task_operation, priority)
WHERE 'flow-' || r.flow_id IN (SELECT stream_id FROM appended)
ORDER BY r.flow_id
ON CONFLICT (flow_id) DO UPDATE
SET definition_version = EXCLUDED.definition_version,
    status = EXCLUDED.status,
    due_at = CASE
                 WHEN EXCLUDED.queue IS NOT NULL THEN
                     CASE WHEN flow_work.task_worker IS NOT NULL
                               AND (flow_work.task_node_id, flow_work.task_operation)
                                   IS NOT DISTINCT FROM (EXCLUDED.task_node_id,
                                                         EXCLUDED.task_operation)
                          THEN flow_work.due_at ELSE 'infinity' END
                 WHEN flow_work.queue IS NULL AND flow_work.due_at <= EXCLUDED.due_at
                      AND EXCLUDED.due_at <= now()
                     THEN flow_work.due_at
                 ELSE EXCLUDED.due_at END,
    stream_version = EXCLUDED.stream_version,
    tenant_id = EXCLUDED.tenant_id,
    priority = EXCLUDED.priority,
    lease_owner = CASE WHEN EXCLUDED.queue IS NULL THEN flow_work.lease_owner END,
    lease_expires_at = CASE WHEN EXCLUDED.queue IS NULL THEN flow_work.lease_expires_at END,
    queue = EXCLUDED.queue,
    task_node_id = EXCLUDED.task_node_id,
    task_operation = EXCLUDED.task_operation,
    offered_at = CASE WHEN (flow_work.task_node_id, flow_work.task_operation)
                           IS NOT DISTINCT FROM (EXCLUDED.task_node_id, EXCLUDED.task_operation)
                      THEN flow_work.offered_at ELSE EXCLUDED.offered_at END,
    task_worker = CASE WHEN (flow_work.task_node_id, flow_work.task_operation)
                           IS NOT DISTINCT FROM (EXCLUDED.task_node_id, EXCLUDED.task_operation)
                      THEN flow_work.task_worker ELSE NULL END,
    task_claimed_at = CASE WHEN (flow_work.task_node_id, flow_work.task_operation)
                           IS NOT DISTINCT FROM (EXCLUDED.task_node_id, EXCLUDED.task_operation)
                      THEN flow_work.task_claimed_at ELSE NULL END,
    task_expires_at = CASE WHEN (flow_work.task_node_id, flow_work.task_operation)
                           IS NOT DISTINCT FROM (EXCLUDED.task_node_id, EXCLUDED.task_operation)
                      THEN flow_work.task_expires_at ELSE NULL END,
    task_claims = CASE WHEN (flow_work.task_node_id, flow_work.task_operation)
                           IS NOT DISTINCT FROM (EXCLUDED.task_node_id, EXCLUDED.task_operation)
                      THEN flow_work.task_claims ELSE 0 END,
    task_details = CASE WHEN (flow_work.task_node_id, flow_work.task_operation)
                           IS NOT DISTINCT FROM (EXCLUDED.task_node_id, EXCLUDED.task_operation)
                      THEN flow_work.task_details ELSE NULL END,
    task_poll_key = CASE WHEN (flow_work.task_node_id, flow_work.task_operation)
                           IS NOT DISTINCT FROM (EXCLUDED.task_node_id, EXCLUDED.task_operation)
                      THEN flow_work.task_poll_key ELSE NULL END,
    updated_at = now()

-- name: work_delete
-- Flows $1 have nothing left to do (ended, not started, or stopped with nothing running); run
-- inside the appends' own statement like work_upsert.
DELETE FROM flow_work
WHERE flow_id = ANY($1::text[]) AND 'flow-' || flow_id IN (SELECT stream_id FROM appended)

-- name: work_claim
-- Up to $3 due flows for worker $1 among definition versions $2, leased for $4 seconds, with
-- the events of each claimed flow (one round trip instead of one more per flow). SKIP LOCKED:
-- concurrent claimers never wait for each other and never take the same row.
--
-- Urgent first: flows of a priority above 0 (a partial index: none, in most installations)
-- before the others, each in due order. Then fairly between tenants: the oldest due flow of
-- each of the next $6 tenants after tenant $5 (the claimer's ring goes round, so that one
-- tenant's burst of flows cannot starve another's single flow; flows without a tenant are not
-- in the ring), then the rest in due order.
-- A claim may lock a few more rows than it takes, for the length of the statement (skipped
-- by other claimers meanwhile). The third column is the last tenant the ring reached (NULL:
-- it went round; start again from the first), the fourth the seconds until the next row not
-- claimed here is claimable (as work_next_due).
WITH RECURSIVE ring (tenant_id, n) AS (
    SELECT (SELECT min(tenant_id) FROM flow_work WHERE tenant_id > $5 AND tenant_id <> ''), 1
    UNION ALL
    SELECT (SELECT min(w.tenant_id) FROM flow_work w
            WHERE w.tenant_id > ring.tenant_id AND w.tenant_id <> ''),
           ring.n + 1
    FROM ring WHERE ring.tenant_id IS NOT NULL AND ring.n < $6
), urgent AS (
    SELECT flow_id
    FROM flow_work
    WHERE priority > 0 AND due_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
      AND definition_version = ANY($2::text[])
    ORDER BY priority DESC, due_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), fair AS (
    SELECT oldest.flow_id
    FROM ring CROSS JOIN LATERAL (
        SELECT flow_id
        FROM flow_work
        WHERE tenant_id = ring.tenant_id AND tenant_id <> '' AND priority = 0
          AND due_at <= now()
          AND (lease_expires_at IS NULL OR lease_expires_at < now())
          AND definition_version = ANY($2::text[])
        ORDER BY due_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ) AS oldest
), usual AS (
    SELECT flow_id
    FROM flow_work
    WHERE priority = 0 AND due_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
      AND definition_version = ANY($2::text[])
      AND flow_id NOT IN (SELECT flow_id FROM fair)
    ORDER BY due_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), due AS (
    SELECT flow_id FROM urgent
    UNION ALL
    (SELECT flow_id FROM fair LIMIT greatest($3 - (SELECT count(*) FROM urgent), 0))
    UNION ALL
    (SELECT flow_id FROM usual
     LIMIT greatest($3 - (SELECT count(*) FROM urgent) - (SELECT count(*) FROM fair), 0))
), claimed AS (
    UPDATE flow_work AS w
    SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $4)
    FROM due
    WHERE w.flow_id = due.flow_id
    RETURNING w.flow_id, w.definition_name
)
SELECT c.flow_id, c.definition_name,
       (SELECT tenant_id FROM ring ORDER BY n DESC LIMIT 1) AS ring_end,
       -- work_next_due's answer for the rows not claimed here (the statement's snapshot does
       -- not see the leases it sets): the claimer sleeps until then without asking again.
       (SELECT extract(epoch FROM min(greatest(f.due_at, coalesce(f.lease_expires_at, f.due_at)))
                                  - now())::float8
        FROM flow_work AS f
        WHERE f.definition_version = ANY($2::text[]) AND f.due_at < 'infinity'
          AND f.flow_id NOT IN (SELECT flow_id FROM claimed)) AS next_due,
       e.position, e.transaction_id, e.stream_id, e.version, e.type, e.data, e.metadata,
       e.recorded_at
FROM claimed c
-- LATERAL: an index lookup per claimed flow, never a join that might scan the log.
CROSS JOIN LATERAL (
    SELECT * FROM events WHERE stream_id = 'flow-' || c.flow_id ORDER BY version
) AS e
ORDER BY c.flow_id, e.version

-- name: work_heartbeat
-- Extends worker $1's leases on flows $2; returns the status of each flow it still holds. A
-- flow missing from the answer was lost (lease expired and taken, or its work is gone).
-- A row an append is writing right now is skipped (SKIP LOCKED), not waited for: its lease is
-- extended by the next beat, long before it lapses. Waiting on rows locked in another order
-- (a child's end wakes its parent's row after writing its own) made heartbeats and appends
-- deadlock. The answer is read from the statement's snapshot, skipped rows included.
WITH extended AS (
    UPDATE flow_work
    SET lease_expires_at = now() + make_interval(secs => $3)
    WHERE flow_id IN (
        SELECT flow_id FROM flow_work
        WHERE lease_owner = $1 AND flow_id = ANY($2::text[])
        ORDER BY flow_id
        FOR UPDATE SKIP LOCKED
    )
    RETURNING flow_id
)
SELECT flow_id, status FROM flow_work
WHERE lease_owner = $1 AND flow_id = ANY($2::text[])

-- name: work_release
-- Worker $1 is done with flow $2 for now: the row (if any) stays due at its due time.
UPDATE flow_work SET lease_owner = NULL, lease_expires_at = NULL
WHERE flow_id = $2 AND lease_owner = $1

-- name: work_defer
-- Driving flow $2 crashed in worker $1 (a bug, not the database): look again in $3 seconds
-- instead of spinning on it.
UPDATE flow_work
SET due_at = now() + make_interval(secs => $3), lease_owner = NULL, lease_expires_at = NULL
WHERE flow_id = $2 AND lease_owner = $1

-- name: work_wait
-- Worker $1 claimed flow $2 (read at stream version $4) before its waiting node's time, by a
-- database clock ahead of the worker's: due in $3 seconds by the database's clock, released.
-- Only if no append happened since (a completion, a cancel: the row says "now" then).
UPDATE flow_work
SET due_at = now() + make_interval(secs => $3), lease_owner = NULL, lease_expires_at = NULL
WHERE flow_id = $2 AND lease_owner = $1 AND stream_version = $4

-- name: task_reoffer
-- Worker $1 claimed flow $2 because the worker of its polling node's poll (a task) was lost:
-- the poll is offered on its queue again, at once, and the reactor's lease ends.
UPDATE flow_work
SET lease_owner = NULL, lease_expires_at = NULL, due_at = 'infinity', offered_at = now(),
    task_worker = NULL, task_claimed_at = NULL, task_expires_at = NULL
WHERE flow_id = $2 AND lease_owner = $1 AND queue IS NOT NULL

-- name: work_release_all
-- Graceful shutdown: worker $1 hands back every lease it holds.
UPDATE flow_work SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1

-- name: work_next_due
-- Seconds until the next flow among versions $1 becomes claimable (due, and any lease
-- expired), by the database's clock; NULL when there is none (tasks offered on a queue are
-- due at 'infinity': workers, not reactors, take them).
SELECT extract(epoch FROM min(greatest(due_at, coalesce(lease_expires_at, due_at))) - now())::float8
FROM flow_work
WHERE definition_version = ANY($1::text[]) AND due_at < 'infinity'

-- name: declarative_definitions
-- Definitions registered over REST (with their JSON spec and their owner), oldest first.
SELECT version, definition -> 'spec' AS spec, tenant_id
FROM workflow_definitions WHERE definition ? 'spec' ORDER BY registered_at

-- name: park
-- Worker $1 parks flow $2 (read at stream version $3) in its memory for polling: the row is
-- due, and its lease lapses, $4 seconds from now, so claimers skip it while the worker holds
-- it and take it when the worker is gone. NULL when the flow moved on or the lease is lost.
UPDATE flow_work
SET due_at = now() + make_interval(secs => $4),
    lease_expires_at = now() + make_interval(secs => $4),
    updated_at = now()
WHERE flow_id = $2 AND lease_owner = $1 AND stream_version = $3
RETURNING flow_id

-- name: rest_until
-- Worker $1 leaves flow $2 (read at stream version $4) in its row until $3, released: a wait
-- too long to hold in memory. Only if no append happened since (an append recomputed the row).
UPDATE flow_work
SET due_at = $3, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE flow_id = $2 AND lease_owner = $1 AND stream_version = $4

-- name: parked_changed
-- Worker $1's flows whose rows changed since $2 (an append: an operator's command), with
-- their stream versions, and the database's time to ask from next. Reads only, and returns
-- only what changed: the caller compares versions with what it parked.
SELECT now() AS checked_at,
       coalesce(array_agg(flow_id), '{}') AS flow_ids,
       coalesce(array_agg(stream_version), '{}') AS versions
FROM flow_work
WHERE lease_owner = $1 AND updated_at > $2

-- name: parked_renew
-- Renews worker $1's leases of parked flows $2 (at stream versions $3) for $4 seconds; a flow
-- missing from the answer changed or was lost. Rows locked in flow id order, as elsewhere.
UPDATE flow_work AS w
SET due_at = now() + make_interval(secs => $4),
    lease_expires_at = now() + make_interval(secs => $4)
FROM (
    SELECT f.flow_id
    FROM flow_work AS f
    JOIN unnest($2::text[], $3::bigint[]) AS p(flow_id, version)
      ON f.flow_id = p.flow_id AND f.stream_version = p.version
    WHERE f.lease_owner = $1
    ORDER BY f.flow_id
    FOR UPDATE OF f
) AS held
WHERE w.flow_id = held.flow_id
RETURNING w.flow_id

-- name: parked_release
-- Worker $1 stops: its parked flows $2 are due at their next poll times $3, released.
UPDATE flow_work AS w
SET due_at = p.due, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
FROM unnest($2::text[], $3::timestamptz[]) AS p(flow_id, due)
WHERE w.flow_id = p.flow_id AND w.lease_owner = $1

-- name: callback_secret
-- The key callback tokens are signed with (migration 0007).
SELECT secret FROM callback_secret

-- name: children_end
-- Children that ended in the batch's appends (parallel arrays): their rows in flow_children,
-- written again (and not yet harvested) when a retried child ends again. Run inside the
-- appends' own statement, only for the streams it appended to.
INSERT INTO flow_children (parent_id, parent_node_id, child_index, flow_id, status, context,
                           child_version, harvested, ended_at)
SELECT r.parent_id, r.parent_node_id, r.child_index, r.flow_id, r.status, r.context,
       r.child_version, false, now()
FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::jsonb[],
            $7::bigint[])
     AS r(parent_id, parent_node_id, child_index, flow_id, status, context, child_version)
WHERE 'flow-' || r.flow_id IN (SELECT stream_id FROM appended)
ON CONFLICT (parent_node_id, child_index) DO UPDATE
SET status = EXCLUDED.status, context = EXCLUDED.context,
    child_version = EXCLUDED.child_version, harvested = false, ended_at = EXCLUDED.ended_at

-- name: children_wake_parents
-- Parents $1 of children $2 that ended in the batch: their work rows are due now, so that a
-- reactor counts the ends (a parent stopped or ended has no row, and is not woken). No
-- condition on the row's due time: a parent's append committing meanwhile (its drive started
-- more children) writes a later due time, which this update must replace; a condition true of
-- the row this statement's snapshot saw, and false of the one it then waits for, would skip
-- the row and lose the wake-up. A parent appended to in the same batch is left out: its own
-- row's upsert is made due now (app/workflow/store.py), and one statement may not change a
-- row twice.
UPDATE flow_work SET due_at = now()
WHERE flow_id IN (
    SELECT r.parent_id FROM unnest($1::text[], $2::text[]) AS r(parent_id, flow_id)
    WHERE 'flow-' || r.flow_id IN (SELECT stream_id FROM appended)
      AND 'flow-' || r.parent_id NOT IN (SELECT stream_id FROM appended)
)

-- name: children_unend
-- Children $1 run again (retried): their ends are no longer ends.
DELETE FROM flow_children
WHERE flow_id = ANY($1::text[]) AND 'flow-' || flow_id IN (SELECT stream_id FROM appended)

-- name: children_harvest
-- The parents' appends count these ends (ChildrenEnded): marked in the same statement, the
-- very end each read (its child_version), so an end is counted once. Parallel arrays: parent
-- flow id, parent node execution, child index, child version.
UPDATE flow_children AS c SET harvested = true
FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[])
     AS r(parent_id, parent_node_id, child_index, child_version)
WHERE c.parent_node_id = r.parent_node_id AND c.child_index = r.child_index
  AND c.child_version = r.child_version
  AND 'flow-' || r.parent_id IN (SELECT stream_id FROM appended)

-- name: children_unharvested
-- Ends of node execution $1's children not counted yet by the parent.
SELECT child_index, status, child_version FROM flow_children
WHERE parent_node_id = $1 AND NOT harvested ORDER BY child_index

-- name: children_ends
-- Every end of node execution $1's children, in element order (a map's results).
SELECT child_index, status, context FROM flow_children
WHERE parent_node_id = $1 ORDER BY child_index

-- name: children_in
-- Node execution $2's children of flow $1 whose status is one of $3, in index order.
SELECT id, child_index FROM workflows
WHERE parent_id = $1 AND parent_node_id = $2 AND status = ANY($3::text[])
ORDER BY child_index

-- name: children_news
-- Whether a child of node execution $1 ended and is not counted yet, and flow $2's stream
-- version (its work row's): what a drive holding a parent waits for.
SELECT EXISTS (SELECT 1 FROM flow_children WHERE parent_node_id = $1 AND NOT harvested)
           AS ended,
       stream_version AS version
FROM flow_work WHERE flow_id = $2

-- name: waits_insert
-- Waits for an event that the batch's appends begin (rows of event_waits, migration 0021):
-- node id, flow id, tenant, event type, the rendered match, since (the placeholder time
-- 0001-01-02: the append's). A node execution waits once; a second insert changes nothing.
INSERT INTO event_waits (node_id, flow_id, tenant_id, event_type, match, since)
SELECT r.node_id, r.flow_id, r.tenant_id, r.event_type, r.match,
       CASE WHEN r.since = '0001-01-02 00:00:00+00' THEN (SELECT min(recorded_at) FROM appended) ELSE r.since END
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[])
     AS r(node_id, flow_id, tenant_id, event_type, match, since)
WHERE 'flow-' || r.flow_id IN (SELECT stream_id FROM appended)
ON CONFLICT (node_id) DO NOTHING

-- name: waits_delete
-- Waits for an event that the batch's appends end ($1 the node ids): the node's outcome, its
-- deadline, a cancel.
DELETE FROM event_waits
WHERE node_id = ANY($1::text[]) AND 'flow-' || flow_id IN (SELECT stream_id FROM appended)
