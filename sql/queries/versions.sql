-- Which definition versions the running processes can run, and the flows that wait for one
-- that none has (app/workflow/versions.py; docs/operations.md, "Upgrades: stranded flows").

-- name: process_versions_beat
-- Process $1 can run definition versions $2; it counts as running for $3 seconds more.
INSERT INTO process_versions (process_id, versions, seen_at, lapses_at)
VALUES ($1, $2::text[], now(), now() + make_interval(secs => $3))
ON CONFLICT (process_id) DO UPDATE
SET versions = EXCLUDED.versions, seen_at = EXCLUDED.seen_at, lapses_at = EXCLUDED.lapses_at

-- name: process_versions_remove
-- Process $1 stopped cleanly: its versions stop counting at once.
DELETE FROM process_versions WHERE process_id = $1

-- name: process_versions_live
-- The processes that count as running now, and the versions each can run.
SELECT process_id, versions, seen_at, lapses_at FROM process_versions
WHERE lapses_at > now() ORDER BY process_id

-- name: awaiting_versions
-- Flows awaiting a version, by definition and version: not ended, with pending work
-- (flow_work has a row for every flow with something to do, due now or later), not offered on
-- a task queue (a worker anywhere runs that node, and its row says so), and of a version that
-- no live process has. $1: only this tenant's (NULL: every tenant's). One pass over flow_work,
-- which holds only the flows with something to do; the live versions are a hashed set.
WITH live AS (
    SELECT DISTINCT unnest(versions) AS version FROM process_versions WHERE lapses_at > now()
)
SELECT w.definition_name AS definition, w.definition_version AS version, count(*) AS flows
FROM flow_work w
WHERE w.queue IS NULL
  AND w.status NOT IN ('Finished', 'Error', 'Canceled')
  AND ($1::text IS NULL OR w.tenant_id = $1)
  AND NOT EXISTS (SELECT FROM live WHERE live.version = w.definition_version)
GROUP BY w.definition_name, w.definition_version
ORDER BY w.definition_name, w.definition_version

-- name: awaiting_flows
-- The flows awaiting a version (as awaiting_versions counts them), oldest first: $1 tenant
-- (NULL: every tenant's), at most $2.
WITH live AS (
    SELECT DISTINCT unnest(versions) AS version FROM process_versions WHERE lapses_at > now()
)
SELECT w.flow_id, w.definition_name AS definition, w.definition_version AS version, w.status,
       f.biz_id, f.created_at
FROM flow_work w
JOIN workflows f ON f.id = w.flow_id
WHERE w.queue IS NULL
  AND w.status NOT IN ('Finished', 'Error', 'Canceled')
  AND ($1::text IS NULL OR w.tenant_id = $1)
  AND NOT EXISTS (SELECT FROM live WHERE live.version = w.definition_version)
ORDER BY f.created_at, w.flow_id
LIMIT $2

-- name: flow_awaiting
-- The version flow $1 awaits (no row when it awaits none): the same rule, for one flow.
SELECT w.definition_version AS version
FROM flow_work w
WHERE w.flow_id = $1
  AND w.queue IS NULL
  AND w.status NOT IN ('Finished', 'Error', 'Canceled')
  AND NOT EXISTS (
      SELECT FROM process_versions p
      WHERE p.lapses_at > now() AND w.definition_version = ANY (p.versions))

-- name: running_versions
-- The flows of definition $1 not ended, by version: how many, and the ids of the oldest $2
-- (what deploying a set of versions of $1 would leave without a process, checked in Python).
SELECT definition_version AS version, count(*) AS flows,
       (array_agg(id ORDER BY created_at, id))[1:$2] AS flow_ids,
       (array_agg(status ORDER BY created_at, id))[1:$2] AS statuses
FROM workflows
WHERE name = $1 AND status NOT IN ('Finished', 'Error', 'Canceled')
GROUP BY definition_version
ORDER BY definition_version
