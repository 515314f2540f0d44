-- Named statements of the event store (eventstore/store.py, eventstore/subscription.py).

-- name: append_with
-- Appends $3..$5 (parallel arrays: type, data, metadata) to stream $1, as common table
-- expressions ending in "appended"; the store completes the statement (eventstore/store.py),
-- with the caller's own statements in between when there are some (AppendAlso).
-- $2 is the expected version (0 = the stream must not exist) or NULL for any version. A
-- stale expectation inserts nothing; two appends with the same expectation collide on
-- events_stream_version_key and the later one fails when the first commits.
-- Nor does it insert when the stream's last event was written by a younger transaction than
-- this one (possible only in a transaction of several statements): the log's order is by
-- transaction id, so every stream's events must come from ever younger transactions
-- (docs/eventstore.md, "Each stream in order"). pg_current_xact_id() is wrapped in a
-- subquery so that it runs at execution, after the statement's snapshot: called bare, the
-- planner evaluates it to estimate the clause's selectivity, which assigns the transaction
-- id before the snapshot is taken, and a transaction younger than this one may then commit
-- the stream's head in between (seen under contention, refused here as out of order).
head AS (
    SELECT coalesce(last.version, 0) AS version, last.transaction_id
    FROM (SELECT) AS one
    LEFT JOIN LATERAL (
        SELECT version, transaction_id FROM events WHERE stream_id = $1
        ORDER BY version DESC LIMIT 1
    ) AS last ON true
),
appended AS (
    INSERT INTO events (stream_id, version, type, data, metadata)
    SELECT $1, head.version + e.ordinal, e.type, e.data, e.metadata
    FROM head,
         unnest($3::text[], $4::jsonb[], $5::jsonb[]) WITH ORDINALITY AS e(type, data, metadata, ordinal)
    WHERE ($2::bigint IS NULL OR head.version = $2::bigint)
      AND (head.transaction_id IS NULL OR head.transaction_id <= (SELECT pg_current_xact_id()))
    ORDER BY e.ordinal
    RETURNING position, transaction_id, version, recorded_at
)

-- name: append_one_with
-- The same for a single event ($3 type, $4 data, $5 metadata): no arrays to build and unpack,
-- measurably cheaper for the most common append (docs/benchmarks.md).
appended AS (
    INSERT INTO events (stream_id, version, type, data, metadata)
    SELECT $1, coalesce(last.version, 0) + 1, $3, $4, $5
    FROM (SELECT) AS one
    LEFT JOIN LATERAL (
        SELECT version, transaction_id FROM events WHERE stream_id = $1
        ORDER BY version DESC LIMIT 1
    ) AS last ON true
    WHERE ($2::bigint IS NULL OR coalesce(last.version, 0) = $2::bigint)
      AND (last.transaction_id IS NULL OR last.transaction_id <= (SELECT pg_current_xact_id()))
    RETURNING position, transaction_id, version, recorded_at
)

-- name: append_batch_with
-- Appends to many streams in one statement (group commit), as common table expressions
-- ending in "appended" (position, transaction_id, stream_id, version, recorded_at), which the
-- store completes like append_with. $1 and $2 are parallel arrays, one entry per stream (its
-- id, its exact expected version, 0 = must not exist); $3..$6 one entry per event (the
-- 1-based index of its stream in $1, type, data, metadata), each stream's events in order.
-- Each stream stands alone: a stale expectation, or a head written meanwhile by another
-- transaction, leaves that stream out and the others in. The first event of each stream is
-- inserted with ON CONFLICT DO NOTHING, so a concurrent writer of the same stream never fails
-- the statement; the rest of a stream's events follow only when its first is in (that
-- version is then ours until we commit: no one can write the next one). Streams are written
-- in stream-id order, so two batches that share streams wait on each other in one order and
-- never deadlock. Callers' statements must act only on rows of streams found in "appended".
batch AS (
    SELECT b.item, b.stream_id, b.expected
    FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS b(stream_id, expected, item)
),
heads AS (
    SELECT batch.item, batch.stream_id, batch.expected
    FROM batch
    LEFT JOIN LATERAL (
        SELECT version, transaction_id FROM events WHERE stream_id = batch.stream_id
        ORDER BY version DESC LIMIT 1
    ) AS last ON true
    WHERE coalesce(last.version, 0) = batch.expected
      AND (last.transaction_id IS NULL OR last.transaction_id <= (SELECT pg_current_xact_id()))
),
incoming AS (
    SELECT e.item, e.type, e.data, e.metadata,
           row_number() OVER (PARTITION BY e.item ORDER BY e.ordinal) AS offset_in_stream
    FROM unnest($3::integer[], $4::text[], $5::jsonb[], $6::jsonb[])
         WITH ORDINALITY AS e(item, type, data, metadata, ordinal)
),
firsts AS (
    INSERT INTO events (stream_id, version, type, data, metadata)
    SELECT heads.stream_id, heads.expected + 1, incoming.type, incoming.data, incoming.metadata
    FROM heads JOIN incoming ON incoming.item = heads.item AND incoming.offset_in_stream = 1
    ORDER BY heads.stream_id
    ON CONFLICT (stream_id, version) DO NOTHING
    RETURNING position, transaction_id, stream_id, version, recorded_at
),
rests AS (
    INSERT INTO events (stream_id, version, type, data, metadata)
    SELECT heads.stream_id, heads.expected + incoming.offset_in_stream, incoming.type,
           incoming.data, incoming.metadata
    FROM heads
    JOIN firsts ON firsts.stream_id = heads.stream_id
    JOIN incoming ON incoming.item = heads.item AND incoming.offset_in_stream > 1
    ORDER BY heads.stream_id, incoming.offset_in_stream
    RETURNING position, transaction_id, stream_id, version, recorded_at
),
appended AS (
    SELECT * FROM firsts UNION ALL SELECT * FROM rests
)

-- name: stream_version
-- The version of the last event of stream $1, 0 when the stream does not exist.
SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1

-- name: stream_versions
-- The version of the last event of each stream of $1 that exists.
SELECT stream_id, max(version) AS version FROM events WHERE stream_id = ANY($1::text[])
GROUP BY stream_id

-- name: read_stream
-- Events of stream $1 from version $2 up to version $3, in stream order.
SELECT position, transaction_id, stream_id, version, type, data, metadata, recorded_at
FROM events
WHERE stream_id = $1 AND version >= $2 AND version <= $3
ORDER BY version

-- name: read_all
-- Up to $3 events after checkpoint ($1, $2) in log order (transaction_id, position). Only
-- events of transactions older than the snapshot's xmin are read: every such transaction has
-- ended, so no event can ever be committed before the last one returned.
SELECT position, transaction_id, stream_id, version, type, data, metadata, recorded_at
FROM events
WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id, position
LIMIT $3

-- name: checkpoint_now
-- The oldest transaction still open in the cluster (the snapshot's xmin): every transaction
-- that commits from now on has an id at least this, so the checkpoint (xmin, 0) lies below
-- all their events (positions start at 1).
SELECT pg_snapshot_xmin(pg_current_snapshot())

-- name: more_after
-- Whether any committed event follows checkpoint ($1, $2), readable yet or still held back
-- behind an older open transaction (of any database of the cluster). A reader whose last read
-- came back short then retries soon instead of at the poll interval. Deliberately not "above
-- the horizon": the horizon may move between the read and this statement.
SELECT EXISTS (
    SELECT 1 FROM events WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
)

-- name: horizon_check
-- The newest transaction id stored (the events' and the subscriptions' checkpoints: both
-- 64-bit, epoch included) and the next one the server will assign. Stored ids that are not
-- all below the next one come from another cluster (a pg_dump restore): new events would
-- sort before old ones, and a checkpoint ahead would skip them. Startup refuses such a log.
SELECT greatest(
           (SELECT max(transaction_id) FROM events),
           (SELECT max(transaction_id) FROM subscriptions)
       ) AS newest,
       pg_snapshot_xmax(pg_current_snapshot()) AS next

-- name: begin
-- Every store transaction runs at READ COMMITTED whatever the server's default: a retried
-- statement must see what committed since (the any-version retry, the append conflict check).
BEGIN ISOLATION LEVEL READ COMMITTED

-- name: commit
COMMIT

-- name: rollback
ROLLBACK

-- name: savepoint
-- One name for every level: ROLLBACK TO and RELEASE act on the most recent savepoint of a name.
SAVEPOINT flowlog_savepoint

-- name: rollback_to_savepoint
ROLLBACK TO SAVEPOINT flowlog_savepoint

-- name: release_savepoint
RELEASE SAVEPOINT flowlog_savepoint

-- name: notify
-- Wakes the readers of every process (LISTEN flowlog_events). Sent after commit, coalesced.
SELECT pg_notify($1, '')

-- name: subscription_ensure
-- Registers subscription $1 at checkpoint ($2, $3) when it is new.
INSERT INTO subscriptions (name, transaction_id, position) VALUES ($1, $2::xid8, $3)
ON CONFLICT (name) DO NOTHING

-- name: subscription_try_lock
-- One active batch per subscription name across processes. A transaction-scoped advisory
-- lock takes no transaction id, so holding it does not hold back other readers' horizon.
SELECT pg_try_advisory_xact_lock(1718382455, hashtext($1))

-- name: subscription_checkpoint
-- The stored checkpoint of subscription $1.
SELECT transaction_id, position FROM subscriptions WHERE name = $1

-- name: subscription_advance
-- Moves subscription $1 from checkpoint ($4, $5) to ($2, $3); zero rows when it has moved
-- meanwhile (the caller then rolls back its batch).
UPDATE subscriptions
SET transaction_id = $2, position = $3, updated_at = now()
WHERE name = $1 AND transaction_id = $4 AND position = $5

-- name: removed_after
-- The first removal from the log (archival, sql/migrations/0009) that took events after
-- checkpoint ($1, $2): a reader there would miss them.
SELECT record_stream, events, first_position, last_position, removed_at
FROM log_removals
WHERE (last_transaction_id, last_position) > ($1::xid8, $2::bigint)
ORDER BY last_transaction_id, last_position
LIMIT 1

-- name: removal_horizon
-- The log-order place of the last event ever removed: reading from there misses nothing more.
SELECT last_transaction_id, last_position
FROM log_removals ORDER BY last_transaction_id DESC, last_position DESC LIMIT 1
