-- Named statements of the console's Activity page (app/console/activity.py): the log's events
-- newest first, with who did them and the tenant they belong to (event_tenant(), migration
-- 0016). Both page statements take the same parameters, each optional (NULL: any) but $1 in
-- activity_of_actor and $7, $8:
--   $1 actor (metadata ->> 'actor', exact), $2 tenant (event_tenant(stream_id), exact),
--   $3 event type, $4 recorded at or after, $5 recorded before,
--   $6 the keyset cursor: only events before this position (NULL: from the newest),
--   $7 rows wanted, $8 events examined at most.
-- A page walks an index from the cursor and examines at most $8 events, so a filter that
-- matches little (another tenant's actor, a rare type, an old time range) costs a bounded
-- walk, not the whole log. Each row says whether it matches the filters (`matches`); the
-- $8-th event examined comes back even when it does not (`examined` = $8), as the place the
-- next page goes on from. The tenant is looked up (primary-key probes) only for events the
-- cheaper filters let through, and for the rows returned.

-- name: activity_of_actor
-- One actor's events: a range of events_actor_idx, walked from its newest (or from the
-- cursor's position: an index bound, not a filter).
SELECT w.position, w.recorded_at, w.stream_id, w.type, w.actor, w.reason,
       event_tenant(w.stream_id) AS tenant_id, w.examined,
       ($3::text IS NULL OR w.type = $3)
       AND ($4::timestamptz IS NULL OR w.recorded_at >= $4)
       AND ($5::timestamptz IS NULL OR w.recorded_at < $5)
       AND ($2::text IS NULL OR event_tenant(w.stream_id) = $2) AS matches
FROM (
    SELECT e.position, e.recorded_at, e.stream_id, e.type, e.metadata ->> 'actor' AS actor,
           coalesce(e.metadata ->> 'reason', e.data ->> 'reason') AS reason,
           row_number() OVER (ORDER BY e.position DESC) AS examined
    FROM events e
    WHERE e.metadata ->> 'actor' = $1::text
      AND e.position < coalesce($6::bigint, 9223372036854775807)
    ORDER BY e.position DESC  -- the actor is one value: the index's order
    LIMIT $8
) w
WHERE w.examined = $8
   OR (($3::text IS NULL OR w.type = $3)
       AND ($4::timestamptz IS NULL OR w.recorded_at >= $4)
       AND ($5::timestamptz IS NULL OR w.recorded_at < $5)
       AND ($2::text IS NULL OR event_tenant(w.stream_id) = $2))
ORDER BY w.position DESC
LIMIT $7

-- name: activity
-- Any actor's events (for $1 NULL; given an actor, activity_of_actor finds its events without
-- walking everyone else's): the log's primary key, walked from the newest (or from the
-- cursor's position).
SELECT w.position, w.recorded_at, w.stream_id, w.type, w.actor, w.reason,
       event_tenant(w.stream_id) AS tenant_id, w.examined,
       ($3::text IS NULL OR w.type = $3)
       AND ($4::timestamptz IS NULL OR w.recorded_at >= $4)
       AND ($5::timestamptz IS NULL OR w.recorded_at < $5)
       AND ($2::text IS NULL OR event_tenant(w.stream_id) = $2) AS matches
FROM (
    SELECT e.position, e.recorded_at, e.stream_id, e.type, e.metadata ->> 'actor' AS actor,
           coalesce(e.metadata ->> 'reason', e.data ->> 'reason') AS reason,
           row_number() OVER (ORDER BY e.position DESC) AS examined
    FROM events e
    WHERE ($1::text IS NULL OR e.metadata ->> 'actor' = $1)
      AND e.position < coalesce($6::bigint, 9223372036854775807)
    ORDER BY e.position DESC
    LIMIT $8
) w
WHERE w.examined = $8
   OR (($3::text IS NULL OR w.type = $3)
       AND ($4::timestamptz IS NULL OR w.recorded_at >= $4)
       AND ($5::timestamptz IS NULL OR w.recorded_at < $5)
       AND ($2::text IS NULL OR event_tenant(w.stream_id) = $2))
ORDER BY w.position DESC
LIMIT $7

-- name: actors
-- The distinct actors of the log, in order, at most $1: one probe of events_actor_idx per
-- actor (a loose index scan), however many events each has. For viewers of every tenant
-- only: the names of other tenants' tokens are not a tenant's to read.
WITH RECURSIVE found(actor) AS (
    (SELECT e.metadata ->> 'actor' FROM events e
     WHERE e.metadata ->> 'actor' IS NOT NULL
     ORDER BY e.metadata ->> 'actor' LIMIT 1)
    UNION ALL
    SELECT (SELECT e.metadata ->> 'actor' FROM events e
            WHERE e.metadata ->> 'actor' > f.actor
            ORDER BY e.metadata ->> 'actor' LIMIT 1)
    FROM found f
    WHERE f.actor IS NOT NULL
)
SELECT actor FROM found WHERE actor IS NOT NULL LIMIT $1
