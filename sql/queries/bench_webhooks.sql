-- Named statements of `flowlog bench webhooks` (app/bench/webhooks.py): a subscription made
-- as the webhooks' create makes it (its row, and its cursor at the log's "now").

-- name: subscribe
INSERT INTO webhooks (id, tenant_id, url, events, state, created_at, created_by, updated_at,
                      updated_by, stream_version)
VALUES ($1, '', $2, $3, 'active', now(), 'bench', now(), 'bench', 1)

-- name: cursor
INSERT INTO subscriptions (name, transaction_id, position)
VALUES ('webhook-' || $1, pg_snapshot_xmin(pg_current_snapshot()), 0)

-- name: changed
SELECT pg_notify('flowlog_webhooks', $1)

-- name: wanted
-- The events of flows $2 the subscription wants ($1: its types): what must arrive.
SELECT position, stream_id, version FROM events
WHERE stream_id = ANY ($2::text[]) AND type = ANY ($1::text[])
