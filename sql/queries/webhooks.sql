-- Named statements of webhook subscriptions (app/webhooks/store.py): the `webhooks`
-- projection, each subscription's cursor, and what the API and the console read of delivery
-- (the delivery tables are written by app/webhooks/delivery.py; only read here).

-- name: upsert
-- The subscription's row after an append to its stream, in the append's own statement (it acts
-- only when the append did). The tenant and the creation are the first append's, kept after.
INSERT INTO webhooks (id, tenant_id, url, events, definitions, statuses, description, state,
                      secret_version, created_at, created_by, updated_at, updated_by,
                      stream_version)
SELECT $1::text, $2::text, $3::text, $4::text[], $5::text[], $6::text[], $7::text, $8::text,
       $9::integer, a.recorded_at, $10::text, a.recorded_at, $10::text, a.version
FROM appended AS a
ORDER BY a.version DESC
LIMIT 1
ON CONFLICT (id) DO UPDATE
SET url = EXCLUDED.url,
    events = EXCLUDED.events,
    definitions = EXCLUDED.definitions,
    statuses = EXCLUDED.statuses,
    description = EXCLUDED.description,
    state = EXCLUDED.state,
    secret_version = EXCLUDED.secret_version,
    updated_at = EXCLUDED.updated_at,
    updated_by = EXCLUDED.updated_by,
    stream_version = EXCLUDED.stream_version

-- name: register_cursor
-- The new subscription's cursor ($1: its eventstore subscription's name), in the create's own
-- statement, at the log's "now" (as checkpoint_now): it delivers what is appended from its
-- creation on, never the history before it.
INSERT INTO subscriptions (name, transaction_id, position)
SELECT $1::text, pg_snapshot_xmin(pg_current_snapshot()), 0
WHERE EXISTS (SELECT 1 FROM appended)
ON CONFLICT (name) DO NOTHING

-- name: register_all
-- Every subscription's cursor not yet registered (deleted ones deliver nothing and get none),
-- after an import: past the last imported event, so that the history is not sent again (the
-- log's "now" alone is not enough: a transaction open anywhere in the cluster holds it below
-- the import's), and never below "now".
WITH last AS (
    SELECT transaction_id, position FROM events
    ORDER BY transaction_id DESC, position DESC
    LIMIT 1
), here AS (
    SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin
)
INSERT INTO subscriptions (name, transaction_id, position)
SELECT 'webhook-' || w.id,
       CASE WHEN l.transaction_id IS NULL OR h.xmin > l.transaction_id THEN h.xmin
            ELSE l.transaction_id END,
       CASE WHEN l.transaction_id IS NULL OR h.xmin > l.transaction_id THEN 0
            ELSE l.position END
FROM webhooks AS w CROSS JOIN here AS h LEFT JOIN last AS l ON true
WHERE w.state <> 'deleted'
ON CONFLICT (name) DO NOTHING

-- name: notify
-- Every process's delivery reloads the subscription $1 (after the change committed).
SELECT pg_notify('flowlog_webhooks', $1)

-- name: webhook
SELECT id, tenant_id, state, stream_version FROM webhooks WHERE id = $1

-- name: listed
-- The subscriptions of tenant $1 (NULL: every tenant) but deleted ones, newest first, after
-- cursor ($2 created_at, $3 id) when given; $4 rows.
SELECT id, tenant_id, url, events, definitions, statuses, description, state, secret_version,
       created_at, created_by, updated_at, updated_by, stream_version
FROM webhooks
WHERE ($1::text IS NULL OR tenant_id = $1)
  AND state <> 'deleted'
  AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::text))
ORDER BY created_at DESC, id DESC
LIMIT $4

-- name: delivery
-- How subscription $1 (cursor $2) is doing. Events behind its cursor are counted up to $3 (an
-- exact count of a long backlog would read all of it); the lag in seconds is the age of the
-- oldest of them. Pending deliveries are counted up to $3 too.
WITH cursor AS (
    SELECT transaction_id, position FROM subscriptions WHERE name = $2
), behind AS (
    SELECT e.recorded_at
    FROM events AS e, cursor AS c
    WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)
    ORDER BY e.transaction_id, e.position
    LIMIT $3
), pending AS (
    SELECT enqueued_at FROM webhook_deliveries
    WHERE webhook_id = $1 AND state = 'pending'
    LIMIT $3
)
SELECT EXISTS (SELECT 1 FROM cursor) AS registered, $3::bigint AS cap,
       (SELECT count(*) FROM behind) AS lag_events,
       (SELECT extract(epoch FROM now() - min(recorded_at)) FROM behind)::float8 AS lag_seconds,
       (SELECT count(*) FROM pending) AS pending,
       (SELECT extract(epoch FROM now() - min(enqueued_at)) FROM pending)::float8
           AS oldest_pending_seconds,
       (SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1 AND state = 'dead')
           AS dead,
       coalesce(s.delivered, 0) AS delivered,
       coalesce(s.failed_attempts, 0) AS failed_attempts,
       s.last_delivered_at, s.last_failed_at, s.last_status, s.last_answer,
       coalesce(s.failing, false) AS failing
FROM (SELECT 1) AS one
LEFT JOIN webhook_status AS s ON s.webhook_id = $1

-- name: dead_letters
-- Subscription $1's dead letters, most recently dead first; $2 rows.
SELECT position, stream_id, event_type, flow_status, attempts, last_status, last_answer,
       first_failed_at, last_attempt_at, dead_at
FROM webhook_deliveries
WHERE webhook_id = $1 AND state = 'dead'
ORDER BY dead_at DESC, position DESC
LIMIT $2

-- name: restore
-- A subscription's row from its stream's fold (flowlog rebuild, import).
INSERT INTO webhooks (id, tenant_id, url, events, definitions, statuses, description, state,
                      secret_version, created_at, created_by, updated_at, updated_by,
                      stream_version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (id) DO UPDATE
SET tenant_id = EXCLUDED.tenant_id, url = EXCLUDED.url, events = EXCLUDED.events,
    definitions = EXCLUDED.definitions, statuses = EXCLUDED.statuses,
    description = EXCLUDED.description, state = EXCLUDED.state,
    secret_version = EXCLUDED.secret_version, created_at = EXCLUDED.created_at,
    created_by = EXCLUDED.created_by, updated_at = EXCLUDED.updated_at,
    updated_by = EXCLUDED.updated_by, stream_version = EXCLUDED.stream_version

-- name: rows
-- Every subscription's row, in the columns of its fold (flowlog verify).
SELECT id, tenant_id, url, events, definitions, statuses, description, state, secret_version,
       created_at, created_by, updated_at, updated_by, stream_version
FROM webhooks

-- name: kept_of_tenant
-- How many subscriptions tenant $1 has that are not deleted.
SELECT count(*) FROM webhooks WHERE tenant_id = $1 AND state <> 'deleted'
