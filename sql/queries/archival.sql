-- Named statements of retention and archival (app/archive/).

-- name: candidates
-- Ended flows whose last change is older than the cutoff ($1 interval before now); of the
-- definitions named in $2 when it is not NULL, else of any definition not in $3 (those have a
-- retention of their own). At most $4, oldest created first: the walk follows
-- workflows_created_idx and stops at $4 (updated_at has no index, see migration 0009).
-- A tree is archived together: only flows without a parent are chosen, once every flow under
-- them has ended, and with every flow under them (the parent's retention decides). Never the
-- flows of $5, an archive still being written and removed (sealed, but still in the log: a
-- retention of zero would take them again).
WITH RECURSIVE roots AS (
    SELECT r.id
    FROM workflows r
    WHERE r.status IN ('Finished', 'Error', 'Canceled')
      AND r.updated_at < now() - $1::interval
      AND ($2::text[] IS NULL OR r.name = ANY($2::text[]))
      AND NOT (r.name = ANY($3::text[]))
      AND r.parent_id IS NULL
      AND NOT (r.id = ANY($5::text[]))
      AND NOT EXISTS (
          WITH RECURSIVE under AS (
              SELECT c.id, c.status FROM workflows c WHERE c.parent_id = r.id
              UNION ALL
              SELECT g.id, g.status FROM workflows g JOIN under u ON g.parent_id = u.id
          )
          SELECT 1 FROM under WHERE status NOT IN ('Finished', 'Error', 'Canceled')
      )
    ORDER BY r.created_at, r.id
    LIMIT $4
), tree AS (
    SELECT id FROM roots
    UNION ALL
    SELECT c.id FROM workflows c JOIN tree t ON c.parent_id = t.id
)
SELECT w.id, w.name, w.tenant_id, w.status, w.stream_version, w.updated_at
FROM tree JOIN workflows w ON w.id = tree.id

-- name: candidate_summary
-- What a dry run reports: the flows the same selection would archive, by definition (a tree
-- counted by the flow at its root).
SELECT name, count(*) AS flows, min(updated_at) AS oldest
FROM workflows
WHERE status IN ('Finished', 'Error', 'Canceled')
  AND updated_at < now() - $1::interval
  AND ($2::text[] IS NULL OR name = ANY($2::text[]))
  AND NOT (name = ANY($3::text[]))
  AND parent_id IS NULL
GROUP BY name ORDER BY name

-- name: read_streams
-- The whole streams of the listed flows, stream by stream.
SELECT position, transaction_id, stream_id, version, type, data, metadata, recorded_at
FROM events WHERE stream_id = ANY($1::text[])
ORDER BY stream_id, version

-- name: unfinished
-- Archives begun and not yet through their removal (a run stopped half way): resumed first.
SELECT id, status FROM archives WHERE status <> 'Removed' ORDER BY created_at

-- name: archive_of
-- Where an archived flow went.
SELECT f.flow_id, f.archive_id, f.tenant_id, f.name, f.status, f.version, f.archived_at,
       a.file, a.sha256
FROM archived_flows f JOIN archives a ON a.id = f.archive_id
WHERE f.flow_id = $1

-- name: archive_row
SELECT id, status, file, sha256, bytes, flows, events, removed, created_at, updated_at
FROM archives WHERE id = $1

-- name: remove
-- Removes a chunk of the archive's flows from the hot log (sql/migrations/0009).
SELECT flowlog_remove_archived($1, $2::text[])

-- name: try_lock
-- One archiver at a time, whichever process: a session lock on a connection of its own.
SELECT pg_try_advisory_lock(hashtext('flowlog-archiver'))

-- name: unlock
SELECT pg_advisory_unlock(hashtext('flowlog-archiver'))

-- name: hot_log_size
-- The hot log's size: the events table and its indexes (bench archive).
SELECT pg_table_size('events') AS table_bytes, pg_indexes_size('events') AS index_bytes,
       (SELECT count(*) FROM events) AS events

-- name: project_planned
-- The archive's row, as its ArchivePlanned event makes it.
INSERT INTO archives (id, status, flows, created_at, updated_at, stream_version)
SELECT $1, 'Planned', $2, a.recorded_at, a.recorded_at, a.version FROM appended a
WHERE EXISTS (SELECT 1 FROM appended)

-- name: project_written
UPDATE archives
SET status = 'Written', file = $2, sha256 = $3, bytes = $4, flows = $5, events = $6,
    first_position = $7, last_position = $8,
    updated_at = (SELECT recorded_at FROM appended), stream_version = (SELECT version FROM appended)
WHERE id = $1 AND EXISTS (SELECT 1 FROM appended)

-- name: project_written_flows
-- One row per archived flow (parallel arrays, one entry per flow).
INSERT INTO archived_flows (flow_id, archive_id, tenant_id, name, status, version,
                            first_position, last_position, archived_at)
SELECT f.id, $1, f.tenant_id, f.name, f.status, f.version, f.first_position, f.last_position,
       (SELECT recorded_at FROM appended)
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
            $8::bigint[]) AS f(id, tenant_id, name, status, version, first_position, last_position)
WHERE EXISTS (SELECT 1 FROM appended)
ON CONFLICT (flow_id) DO UPDATE
SET archive_id = EXCLUDED.archive_id, tenant_id = EXCLUDED.tenant_id, name = EXCLUDED.name,
    status = EXCLUDED.status, version = EXCLUDED.version,
    first_position = EXCLUDED.first_position, last_position = EXCLUDED.last_position,
    archived_at = EXCLUDED.archived_at

-- name: project_removed
UPDATE archives
SET status = 'Removed', removed = $2,
    updated_at = (SELECT recorded_at FROM appended), stream_version = (SELECT version FROM appended)
WHERE id = $1 AND EXISTS (SELECT 1 FROM appended)

-- name: project_kept
-- Flows the archive holds but that stayed in the hot log (they moved after it was written).
DELETE FROM archived_flows
WHERE archive_id = $1 AND flow_id = ANY($2::text[]) AND EXISTS (SELECT 1 FROM appended)

-- name: project_restored
DELETE FROM archived_flows
WHERE flow_id = ANY($1::text[]) AND EXISTS (SELECT 1 FROM appended)

-- name: project_touched
UPDATE archives
SET updated_at = (SELECT recorded_at FROM appended), stream_version = (SELECT version FROM appended)
WHERE id = $1 AND EXISTS (SELECT 1 FROM appended)

-- name: stream_heads
-- Which of the listed streams still have events.
SELECT s.stream_id FROM unnest($1::text[]) AS s(stream_id)
WHERE EXISTS (SELECT 1 FROM events e WHERE e.stream_id = s.stream_id)

-- name: retention
-- The owner's retention (sql/migrations/0010): '' is the default, a NULL keep is off.
SELECT definition, keep, set_at, set_by FROM archive_retention ORDER BY definition

-- name: store_retention
-- Makes the owner's retention exactly the rows given ($1 definitions, '' the default; $2 how
-- long each keeps, NULL off); rows that do not change keep when and by whom they were set.
-- How many rows changed.
WITH wanted AS (
    SELECT w.definition, w.keep FROM unnest($1::text[], $2::interval[]) AS w(definition, keep)
), gone AS (
    DELETE FROM archive_retention r
    WHERE NOT EXISTS (SELECT 1 FROM wanted w WHERE w.definition = r.definition)
    RETURNING 1
), put AS (
    INSERT INTO archive_retention (definition, keep)
    SELECT w.definition, w.keep FROM wanted w
    ON CONFLICT (definition) DO UPDATE
    SET keep = EXCLUDED.keep, set_at = now(), set_by = session_user
    WHERE archive_retention.keep IS DISTINCT FROM EXCLUDED.keep
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM put)
