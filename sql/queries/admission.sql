-- Named statements of flow control (app/workflow/admission.py, migration 0014): slots of
-- concurrency limits, and reservations of rate limits' starts.

-- name: slot_take
-- Flow $3 (tenant $4, created at $5) holds a slot of ($1, $2), whose limit is $6, or takes
-- one, or waits in line (flowlog_slot_take, migration 0014): whether it holds one, and how
-- many wait ahead of it.
SELECT holding, ahead FROM flowlog_slot_take($1, $2, $3, $4, $5, $6)

-- name: slot_wait
-- Flow $1 (read at stream version $3) waits for a slot or a rate limit: due in $2 seconds,
-- released; unless it moved on, or a slot was given back for it meanwhile (woken).
UPDATE flow_work
SET due_at = now() + make_interval(secs => $2), lease_owner = NULL, lease_expires_at = NULL
WHERE flow_id = $1 AND stream_version = $3
  AND NOT EXISTS (SELECT FROM flow_slots WHERE flow_id = $1 AND woken)

-- name: slots_release
-- Run inside the appends' own statement: flows $1 give back every slot they hold but those
-- they keep (pairs of flow $2 and scope $3: their definition's while they run, their running
-- node's). Their places in line (waiting, or a rate limit's reserved start) stay while they
-- keep anything; a flow that ended, or stopped with nothing running, leaves every line.
DELETE FROM flow_slots s
WHERE s.flow_id = ANY($1::text[])
  AND 'flow-' || s.flow_id IN (SELECT stream_id FROM appended)
  AND NOT EXISTS (SELECT FROM unnest($2::text[], $3::text[]) AS k(flow_id, scope)
                  WHERE k.flow_id = s.flow_id AND k.scope = s.scope)
  AND (s.holding OR s.flow_id <> ALL($2::text[]))

-- name: slots_wake
-- With slots_release, in the same statement: the oldest waiters of the slots given back are
-- woken (a waiter that was about to wait longer sees it, slot_wait)...
UPDATE flow_slots w SET woken = true
FROM flowlog_slot_wakes(
    ARRAY(SELECT f FROM unnest($1::text[]) AS f WHERE 'flow-' || f IN (SELECT stream_id FROM appended)),
    $2::text[], $3::text[]) AS o
WHERE w.scope = o.scope AND w.key_value = o.key_value AND w.flow_id = o.flow_id

-- name: slots_wake_work
-- ...and their flow_work rows are due now.
UPDATE flow_work SET due_at = now()
WHERE flow_id IN (
    SELECT o.flow_id FROM flowlog_slot_wakes(
        ARRAY(SELECT f FROM unnest($1::text[]) AS f WHERE 'flow-' || f IN (SELECT stream_id FROM appended)),
        $2::text[], $3::text[]) AS o)

-- name: rate_reserved
-- The start flow $3 reserved under rate limit ($1, $2), if it has one: it starts then (the
-- seconds until then; 0 or less: now, and the reservation is used up).
WITH reserved AS (
    SELECT extract(epoch FROM queued_at - now())::float8 AS wait
    FROM flow_slots WHERE scope = $1 AND key_value = $2 AND flow_id = $3
), used AS (
    DELETE FROM flow_slots
    WHERE scope = $1 AND key_value = $2 AND flow_id = $3 AND queued_at <= now()
)
SELECT wait FROM reserved

-- name: rate_reserve
-- Flow $3 (tenant $4) reserves the next start of rate limit ($1, $2), whose starts are spaced
-- $5 seconds: now if the last start is that long ago, else that long after the last one
-- reserved. The reservation is kept as the flow's place in the limit's line (used up when
-- the flow comes back at its time, dropped if the flow ends); the answer is the seconds until
-- then (0 or less: now, and nothing is kept).
WITH taken AS (
    INSERT INTO rate_limits AS r (scope, key_value, next_start)
    VALUES ($1, $2, now() + make_interval(secs => $5))
    ON CONFLICT (scope, key_value) DO UPDATE
    SET next_start = greatest(r.next_start, now()) + make_interval(secs => $5)
    RETURNING next_start - make_interval(secs => $5) AS reserved
), kept AS (
    INSERT INTO flow_slots AS s (scope, key_value, flow_id, tenant_id, holding, queued_at)
    SELECT $1, $2, $3, $4, false, reserved FROM taken WHERE reserved > now()
    ON CONFLICT (scope, key_value, flow_id) DO UPDATE SET queued_at = EXCLUDED.queued_at
)
SELECT extract(epoch FROM reserved - now())::float8 FROM taken

-- name: waiting_for
-- What flow $1 waits for: the slots it waits for, how many wait ahead of it and hold each,
-- and the starts it reserved under rate limits that have not come yet (their time).
SELECT s.scope, s.key_value, CASE WHEN s.scope LIKE 'rate:%' THEN s.queued_at END AS starts_at,
       (SELECT count(*) FROM flow_slots a
        WHERE a.scope = s.scope AND a.key_value = s.key_value AND NOT a.holding
          AND (a.queued_at, a.flow_id) < (s.queued_at, s.flow_id)) AS ahead,
       (SELECT count(*) FROM flow_slots h
        WHERE h.scope = s.scope AND h.key_value = s.key_value AND h.holding) AS holders
FROM flow_slots s
WHERE s.flow_id = $1 AND NOT s.holding
