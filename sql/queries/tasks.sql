-- Named statements of the task API (app/tasks/, docs/workers.md): offers on queues are the
-- flows' flow_work rows (migration 0013), leased by workers' polls.

-- name: task_claim
-- Worker $4 of tenant $1 leases up to $3 tasks offered on queue $2, urgent first, then oldest,
-- for $5 seconds, in the claiming statement; $6 the poll's idempotency key (NULL: none). The
-- row falls due at the lease's end: a reactor that claims it then records the lost worker.
-- SKIP LOCKED: concurrent polls never wait for each other nor take the same task.
WITH offered AS (
    SELECT flow_id
    FROM flow_work
    WHERE tenant_id = $1 AND queue = $2 AND task_worker IS NULL
      AND lease_owner IS NULL AND status = 'Processing' AND offered_at <= now()
    ORDER BY priority DESC, offered_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE flow_work AS w
    SET task_worker = $4, task_claimed_at = now(),
        task_expires_at = now() + make_interval(secs => $5),
        due_at = now() + make_interval(secs => $5),
        task_claims = w.task_claims + 1, task_details = NULL, task_poll_key = $6
    FROM offered
    WHERE w.flow_id = offered.flow_id
    RETURNING w.flow_id, w.task_node_id, w.task_operation, w.task_claims, w.tenant_id,
              w.priority, w.offered_at
)
SELECT c.flow_id, c.task_node_id, c.task_operation, c.task_claims, c.tenant_id, c.priority,
       wf.name AS flow_name, wf.biz_id, wf.context, n.name AS node_name, n.node_key, n.kind,
       n.attempt, n.parameters
FROM claimed c
JOIN workflows wf ON wf.id = c.flow_id
JOIN workflow_nodes n ON n.id = c.task_node_id
ORDER BY c.priority DESC, c.offered_at

-- name: task_claimed_before
-- The tasks worker $3 of tenant $1 leased with poll key $2 and still holds (the same claim):
-- a poll sent again with its key answers them again instead of leasing more.
SELECT w.flow_id, w.task_node_id, w.task_operation, w.task_claims, w.tenant_id, w.priority,
       wf.name AS flow_name, wf.biz_id, wf.context, n.name AS node_name, n.node_key, n.kind,
       n.attempt, n.parameters
FROM flow_work w
JOIN workflows wf ON wf.id = w.flow_id
JOIN workflow_nodes n ON n.id = w.task_node_id
WHERE w.tenant_id = $1 AND w.task_poll_key = $2 AND w.task_worker = $3
  AND w.task_expires_at > now() AND w.lease_owner IS NULL
ORDER BY w.priority DESC, w.offered_at

-- name: task_unclaim
-- Tasks $1 that worker $2 leased for a poll whose client went away before the answer: offered
-- again at once (the claim's tokens were never seen, and the next claim outdates them).
UPDATE flow_work
SET task_worker = NULL, task_claimed_at = NULL, task_expires_at = NULL, due_at = 'infinity',
    task_poll_key = NULL
WHERE flow_id = ANY($1::text[]) AND task_worker = $2 AND lease_owner IS NULL

-- name: task_heartbeat
-- The holder of claim $4 of the task of flow $1 (node $2, operation $3) extends its lease by
-- $5 seconds and leaves $6 as its progress (NULL: keeps the last); the flow's status, or no
-- row when the claim is no longer the task's (completed, taken back, or offered again).
-- A reactor that took the row back (a lapsed lease) holds it: the beat comes too late.
UPDATE flow_work
SET task_expires_at = now() + make_interval(secs => $5),
    due_at = now() + make_interval(secs => $5),
    task_details = coalesce($6::jsonb, task_details)
WHERE flow_id = $1 AND task_node_id = $2 AND task_operation IS NOT DISTINCT FROM $3
  AND task_claims = $4 AND task_worker IS NOT NULL AND lease_owner IS NULL
RETURNING status, task_worker, queue

-- name: task_current
-- Whether claim $4 of the task of flow $1 (node $2, operation $3) is the task's current one.
SELECT task_worker, status FROM flow_work
WHERE flow_id = $1 AND task_node_id = $2 AND task_operation IS NOT DISTINCT FROM $3
  AND task_claims = $4 AND task_worker IS NOT NULL AND lease_owner IS NULL

-- name: task_poll_later
-- A polling node's poll (a task, claim $4) found its operation still running: offered again
-- in $5 seconds; the lease ends. No row: the claim is no longer the task's.
UPDATE flow_work
SET task_worker = NULL, task_claimed_at = NULL, task_expires_at = NULL, due_at = 'infinity',
    offered_at = now() + make_interval(secs => $5), task_poll_key = NULL
WHERE flow_id = $1 AND task_node_id = $2 AND task_operation = $3 AND task_claims = $4
  AND task_worker IS NOT NULL AND lease_owner IS NULL
RETURNING flow_id

-- name: worker_seen
-- Worker $3 of tenant $1 asked queue $2 for work (a poll or a heartbeat); a worker seen in the
-- last 5 seconds is not written again (a poll must not cost a write and a commit's flush).
INSERT INTO task_workers AS w (tenant_id, queue, worker_id, last_seen)
VALUES ($1, $2, $3, now())
ON CONFLICT (tenant_id, queue, worker_id) DO UPDATE SET last_seen = now()
WHERE w.last_seen < now() - interval '5 seconds'

-- name: workers_forget
-- Workers not seen for $1 seconds are forgotten.
DELETE FROM task_workers WHERE last_seen < now() - make_interval(secs => $1)

-- name: queues
-- Tenant $1's queues (NULL: every tenant's): tasks offered now (depth), offered later (a
-- poll's next time), held by workers (whatever their flow's status), paused (stopped flows'
-- tasks nobody holds), the oldest offered task's age in seconds, and the
-- workers seen in the last $2 seconds.
WITH tasks AS (
    SELECT queue,
           count(*) FILTER (WHERE task_worker IS NULL AND status = 'Processing'
                                  AND offered_at <= now()) AS depth,
           count(*) FILTER (WHERE task_worker IS NULL AND status = 'Processing'
                                  AND offered_at > now()) AS later,
           count(*) FILTER (WHERE task_worker IS NOT NULL) AS held,
           count(*) FILTER (WHERE task_worker IS NULL AND status <> 'Processing') AS paused,
           extract(epoch FROM now() - min(offered_at) FILTER (
               WHERE task_worker IS NULL AND status = 'Processing' AND offered_at <= now()
           ))::float8 AS oldest
    FROM flow_work
    WHERE queue IS NOT NULL AND ($1::text IS NULL OR tenant_id = $1)
    GROUP BY queue
), seen AS (
    SELECT queue, array_agg(worker_id ORDER BY last_seen DESC) AS workers,
           max(last_seen) AS last_seen
    FROM task_workers
    WHERE ($1::text IS NULL OR tenant_id = $1) AND last_seen > now() - make_interval(secs => $2)
    GROUP BY queue
)
SELECT coalesce(t.queue, s.queue) AS queue, coalesce(t.depth, 0) AS depth,
       coalesce(t.later, 0) AS later, coalesce(t.held, 0) AS held,
       coalesce(t.paused, 0) AS paused, t.oldest,
       coalesce(s.workers, '{}') AS workers, s.last_seen
FROM tasks t FULL JOIN seen s ON s.queue = t.queue
ORDER BY 1

-- name: task_of_flow
-- The task flow $1 offers, if any: its queue and who holds it since when.
SELECT queue, task_node_id, task_operation, offered_at, task_worker, task_claimed_at,
       task_expires_at, task_details, status
FROM flow_work WHERE flow_id = $1 AND queue IS NOT NULL
