-- Named statements of webhook delivery (app/webhooks/): the fan-out that turns a
-- subscription's share of the log into delivery rows, the senders' lanes, the API's dead
-- letters, resends and replays, and the metrics' lag. The tables are in
-- sql/migrations/0019_webhooks.sql.

-- name: subscribers
-- The subscriptions that are not deleted, with what the fan-out filters on and the cursor.
SELECT w.id, w.tenant_id, w.events, w.definitions, w.statuses, w.state
FROM webhooks AS w
WHERE w.state <> 'deleted'
ORDER BY w.id

-- name: forget_deleted
-- A deleted subscription's pending deliveries and lanes go (its dead letters stay listed).
WITH lanes AS (
    DELETE FROM webhook_lanes AS l
    USING webhooks AS w
    WHERE w.id = l.webhook_id AND w.state = 'deleted'
)
DELETE FROM webhook_deliveries AS d
USING webhooks AS w
WHERE w.id = d.webhook_id AND w.state = 'deleted' AND d.state = 'pending'

-- name: flows_of
-- The batch's flows ($1: stream ids `flow-<id>`): tenant and definition. Archived flows have
-- no row and are skipped by the fan-out.
SELECT 'flow-' || f.id AS stream_id, f.tenant_id, f.name
FROM workflows AS f
WHERE f.id = ANY (SELECT substr(s, 6) FROM unnest($1::text[]) AS s)

-- name: status_before
-- For each stream $1[i], the last event before version $2[i] that may change the flow's
-- status (app/webhooks/status.py says which and how): its type and data.
SELECT s.stream_id, e.type, e.data
FROM unnest($1::text[], $2::bigint[]) AS s (stream_id, version)
CROSS JOIN LATERAL (
    SELECT e.type, e.data
    FROM events AS e
    WHERE e.stream_id = s.stream_id AND e.version < s.version
      AND e.type = ANY ($3::text[])
      AND (e.type <> 'NodeFailed'
           OR (coalesce((e.data ->> 'pause')::boolean, false)
               AND NOT coalesce((e.data ->> 'will_retry')::boolean, false)))
    ORDER BY e.version DESC
    LIMIT 1
) AS e

-- name: enqueue
-- A fan-out batch of subscription $1: one delivery per event ($2 positions, $3 streams,
-- $4 types, $5 statuses after them), already pending ones kept once (a replay), and each
-- flow's lane made due now unless it exists (waiting for a retry, or being delivered). The
-- lane's row is locked (a no-op update) so that a sender finishing the lane waits for this
-- transaction and then sees its rows (app/webhooks/sender.py, finish).
WITH rows AS (
    INSERT INTO webhook_deliveries AS d (webhook_id, position, stream_id, event_type, flow_status)
    SELECT $1, r.position, r.stream_id, r.event_type, r.flow_status
    FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[])
        AS r (position, stream_id, event_type, flow_status)
    ORDER BY r.position
    ON CONFLICT (webhook_id, position) DO NOTHING
    RETURNING d.stream_id
)
INSERT INTO webhook_lanes AS l (webhook_id, stream_id, due_at)
SELECT DISTINCT $1::text, r.stream_id, now() FROM rows AS r
ORDER BY 2
ON CONFLICT (webhook_id, stream_id) DO UPDATE SET due_at = l.due_at

-- name: claim
-- Up to $3 due lanes of active subscriptions, leased to $1 for $2 seconds; the lease's end
-- is the lane's due time too, so that a lapsed lease is due again by the same index.
WITH due AS (
    SELECT l.webhook_id, l.stream_id
    FROM webhook_lanes AS l
    JOIN webhooks AS w ON w.id = l.webhook_id AND w.state = 'active'
    WHERE l.due_at <= now()
    ORDER BY l.due_at
    LIMIT $3
    FOR UPDATE OF l SKIP LOCKED
)
UPDATE webhook_lanes AS l
SET owner = $1, leased_until = now() + make_interval(secs => $2),
    due_at = now() + make_interval(secs => $2)
FROM due, webhooks AS w
WHERE l.webhook_id = due.webhook_id AND l.stream_id = due.stream_id AND w.id = l.webhook_id
RETURNING l.webhook_id, l.stream_id, w.url, w.secret_version

-- name: renew
-- The leases $1 holds on lanes ($2 subscriptions, $3 streams), for $4 more seconds.
UPDATE webhook_lanes AS l
SET leased_until = now() + make_interval(secs => $4), due_at = now() + make_interval(secs => $4)
FROM unnest($2::text[], $3::text[]) AS k (webhook_id, stream_id)
WHERE l.webhook_id = k.webhook_id AND l.stream_id = k.stream_id AND l.owner = $1

-- name: next_rows
-- The next $3 pending deliveries of lane ($1, $2) in the flow's order, with their events and
-- what the payload says of the flow (from its FlowCreated event: archived flows have no row).
SELECT d.position, d.event_type, d.flow_status, d.attempts, d.first_failed_at,
       e.version, e.data, e.metadata, e.recorded_at,
       c.data AS created
FROM webhook_deliveries AS d
LEFT JOIN events AS e ON e.position = d.position
LEFT JOIN events AS c ON c.stream_id = d.stream_id AND c.version = 1
WHERE d.webhook_id = $1 AND d.stream_id = $2 AND d.state = 'pending'
ORDER BY d.position
LIMIT $3

-- name: delivered
-- Deliveries of subscription $1 at positions $2 succeeded while $3 held their lane: the rows
-- go. Returns how many (fewer: the lane is no longer this sender's).
DELETE FROM webhook_deliveries AS d
WHERE d.webhook_id = $1 AND d.position = ANY ($2::bigint[]) AND d.state = 'pending'
  AND EXISTS (SELECT 1 FROM webhook_lanes AS l
              WHERE l.webhook_id = $1 AND l.stream_id = d.stream_id AND l.owner = $3)

-- name: failed
-- Delivery ($1, $2) failed while $3 held its lane (HTTP status $4 or NULL, answer $5). When
-- its first failure is older than $6 seconds it is dead-lettered and the lane goes on to its
-- next row; else the lane is released until the next try, in $7 seconds. Returns whether it
-- went dead (no row: the lane is no longer this sender's).
WITH tried AS (
    UPDATE webhook_deliveries AS d
    SET attempts = d.attempts + 1,
        first_failed_at = coalesce(d.first_failed_at, now()),
        last_attempt_at = now(), last_status = $4, last_answer = $5,
        state = CASE WHEN coalesce(d.first_failed_at, now()) + make_interval(secs => $6)
                          <= now() THEN 'dead' ELSE 'pending' END,
        dead_at = CASE WHEN coalesce(d.first_failed_at, now()) + make_interval(secs => $6)
                            <= now() THEN now() END
    WHERE d.webhook_id = $1 AND d.position = $2 AND d.state = 'pending'
      AND EXISTS (SELECT 1 FROM webhook_lanes AS l
                  WHERE l.webhook_id = $1 AND l.stream_id = d.stream_id AND l.owner = $3)
    RETURNING d.stream_id, d.state = 'dead' AS dead
), lane AS (
    UPDATE webhook_lanes AS l
    SET owner = NULL, leased_until = NULL, due_at = now() + make_interval(secs => $7)
    FROM tried
    WHERE l.webhook_id = $1 AND l.stream_id = tried.stream_id AND NOT tried.dead
)
SELECT tried.dead FROM tried

-- name: count_outcomes
-- What one sender saw of each subscription since its last report ($1 ids; $2 delivered,
-- $3 failed attempts, $4 dead-lettered; $5, $6 the last success and failure times; $7, $8
-- the last outcome's HTTP status and answer; $9 failing after them: true, false, or NULL
-- when nothing changed it), added to the subscriptions' counters. One statement a second per
-- process, not one per delivery: every sender delivering a subscription would otherwise
-- queue on its one row.
INSERT INTO webhook_status AS s (webhook_id, delivered, failed_attempts, dead,
                                 last_delivered_at, last_failed_at, last_status, last_answer,
                                 failing)
SELECT o.id, o.delivered, o.failed, o.dead, o.delivered_at, o.failed_at, o.status, o.answer,
       coalesce(o.failing, false)
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::timestamptz[],
            $6::timestamptz[], $7::integer[], $8::text[], $9::boolean[])
    AS o (id, delivered, failed, dead, delivered_at, failed_at, status, answer, failing)
WHERE EXISTS (SELECT 1 FROM webhooks AS w WHERE w.id = o.id)
ORDER BY o.id
ON CONFLICT (webhook_id) DO UPDATE
SET delivered = s.delivered + excluded.delivered,
    failed_attempts = s.failed_attempts + excluded.failed_attempts,
    dead = s.dead + excluded.dead,
    last_delivered_at = greatest(s.last_delivered_at, excluded.last_delivered_at),
    last_failed_at = greatest(s.last_failed_at, excluded.last_failed_at),
    last_status = excluded.last_status, last_answer = excluded.last_answer,
    failing = coalesce((SELECT o.failing FROM unnest($1::text[], $9::boolean[]) AS o (id, failing)
                        WHERE o.id = s.webhook_id), s.failing)

-- name: lock_lane
-- The lane ($1, $2) while $3 holds it, locked until the transaction ends: a fan-out adding
-- rows to it holds the same lock (enqueue), so finish sees them once it has the lock.
SELECT 1 FROM webhook_lanes WHERE webhook_id = $1 AND stream_id = $2 AND owner = $3 FOR UPDATE

-- name: finish
-- Lane ($1, $2) of $3 has nothing more pending: it goes; else it is due again at once.
WITH gone AS (
    DELETE FROM webhook_lanes AS l
    WHERE l.webhook_id = $1 AND l.stream_id = $2 AND l.owner = $3
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries AS d
                      WHERE d.webhook_id = $1 AND d.stream_id = $2 AND d.state = 'pending')
    RETURNING 1
)
UPDATE webhook_lanes AS l
SET owner = NULL, leased_until = NULL, due_at = now()
WHERE l.webhook_id = $1 AND l.stream_id = $2 AND l.owner = $3 AND NOT EXISTS (SELECT 1 FROM gone)

-- name: release
-- The leases $1 holds, given back at a stop: due at once for another sender.
UPDATE webhook_lanes SET owner = NULL, leased_until = NULL, due_at = now() WHERE owner = $1

-- name: next_due
-- Seconds until the next lane of an active subscription is due (NULL: none; below 0: due).
-- Not greatest(0, ...): GREATEST ignores a NULL, and "none" read as "due now" made an idle
-- sender run its claim back to back for ever.
SELECT extract(epoch FROM min(l.due_at) - now())::float8
FROM webhook_lanes AS l JOIN webhooks AS w ON w.id = l.webhook_id AND w.state = 'active'

-- name: webhook_of
-- Subscription $1 as the delivery routes see it, in tenant $2 (NULL: any); none when deleted.
SELECT id, tenant_id, state FROM webhooks
WHERE id = $1 AND state <> 'deleted' AND ($2::text IS NULL OR tenant_id = $2)

-- name: deliveries
-- Subscription $1's deliveries in state $2, by position after $3, $4 of them.
SELECT position, stream_id, event_type, flow_status, state, attempts, enqueued_at,
       first_failed_at, last_attempt_at, last_status, last_answer, dead_at
FROM webhook_deliveries
WHERE webhook_id = $1 AND state = $2 AND position > $3
ORDER BY position
LIMIT $4

-- name: resend
-- Dead letters of subscription $1 back to pending (positions $2, NULL: all), attempts
-- reset, their lanes due at once.
WITH back AS (
    UPDATE webhook_deliveries AS d
    SET state = 'pending', attempts = 0, first_failed_at = NULL, dead_at = NULL
    WHERE d.webhook_id = $1 AND d.state = 'dead'
      AND ($2::bigint[] IS NULL OR d.position = ANY ($2::bigint[]))
    RETURNING d.position, d.stream_id
), lanes AS (
    INSERT INTO webhook_lanes AS l (webhook_id, stream_id, due_at)
    SELECT DISTINCT $1::text, b.stream_id, now() FROM back AS b
    ORDER BY 2
    ON CONFLICT (webhook_id, stream_id) DO UPDATE
    SET due_at = CASE WHEN l.owner IS NULL THEN now() ELSE l.due_at END
)
SELECT position FROM back ORDER BY position

-- name: lock_cursor
-- Waits for subscription $1's batch in progress (the eventstore's lock: sql/queries/
-- eventstore.sql, subscription_try_lock), then holds it to the end of the transaction.
SELECT pg_advisory_xact_lock(1718382455, hashtext($1))

-- name: event_at
-- The event at position $1, else the first one after it by position.
SELECT transaction_id, position FROM events WHERE position >= $1 ORDER BY position LIMIT 1

-- name: event_since
-- The first event in log order recorded at or after $1. Materialized: the events since then
-- are found by the BRIN index on recorded_at (0019), not by walking the log from its start.
WITH since AS MATERIALIZED (
    SELECT transaction_id, position FROM events WHERE recorded_at >= $1
)
SELECT transaction_id, position FROM since ORDER BY transaction_id, position LIMIT 1

-- name: rewind
-- Moves cursor $1 back to ($2, $3), never forward; returns where it is.
UPDATE subscriptions
SET transaction_id = CASE WHEN ($2::xid8, $3::bigint) < (transaction_id, position) THEN $2::xid8
                          ELSE transaction_id END,
    position = CASE WHEN ($2::xid8, $3::bigint) < (transaction_id, position) THEN $3::bigint
                    ELSE position END,
    updated_at = now()
WHERE name = $1
RETURNING transaction_id, position

-- name: lag
-- Per active or paused subscription: log events after its cursor (counted up to $1), its
-- pending deliveries, and the age in seconds of the oldest event it has still to deliver
-- (pending, or not read yet).
SELECT w.id,
       (SELECT count(*) FROM (
            SELECT 1 FROM events AS e
            WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)
            LIMIT $1) AS u) AS unread,
       (SELECT count(*) FROM webhook_deliveries AS d
        WHERE d.webhook_id = w.id AND d.state = 'pending') AS pending,
       greatest(
           coalesce(extract(epoch FROM now() - (
               SELECT e.recorded_at FROM webhook_deliveries AS d JOIN events AS e
                   ON e.position = d.position
               WHERE d.webhook_id = w.id AND d.state = 'pending'
               ORDER BY d.position LIMIT 1)), 0),
           coalesce(extract(epoch FROM now() - (
               SELECT e.recorded_at FROM events AS e
               WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)
               ORDER BY e.transaction_id, e.position LIMIT 1)), 0)
       )::float8 AS seconds
FROM webhooks AS w
JOIN subscriptions AS c ON c.name = 'webhook-' || w.id
WHERE w.state <> 'deleted'

-- name: replay_event
-- A resend's or replay's event (its stream $1, version $2): an idempotent request's answer.
SELECT data FROM events WHERE stream_id = $1 AND version = $2

-- name: changed
-- Tells every process that subscription $1 changed (its cursor moved back).
SELECT pg_notify('flowlog_webhooks', $1)
