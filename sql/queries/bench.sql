-- Named statements of the benchmarks (app/bench/). The baselines are what PostgreSQL does
-- without flowlog: the events table's columns, a primary key, nothing else.

-- name: create_plain_table
CREATE TABLE bench_plain (
    position       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL,
    type           text        NOT NULL,
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at    timestamptz NOT NULL DEFAULT statement_timestamp()
)

-- name: plain_insert_one
-- Baseline for a one-event append: one single-row INSERT.
INSERT INTO bench_plain (stream_id, version, type, data, metadata) VALUES ($1, $2, $3, $4, $5)

-- name: plain_insert_many
-- Baseline for an n-event append: one multi-row INSERT.
INSERT INTO bench_plain (stream_id, version, type, data, metadata)
SELECT $1, $2 + e.ordinal, e.type, e.data, e.metadata
FROM unnest($3::text[], $4::jsonb[], $5::jsonb[]) WITH ORDINALITY AS e(type, data, metadata, ordinal)

-- name: plain_insert_one_notify
-- What a NOTIFY inside every append would cost: the single-row INSERT and a NOTIFY in the same
-- transaction (PostgreSQL serialises the commits of notifying transactions).
WITH inserted AS (
    INSERT INTO bench_plain (stream_id, version, type, data, metadata)
    VALUES ($1, $2, $3, $4, $5)
    RETURNING 1
)
SELECT pg_notify('flowlog_bench', '') FROM inserted

-- name: server_version
SELECT current_setting('server_version')
