-- Named statements of the projections' bulk reads (projections/bulk.py): the streams of a
-- range of stream ids, read whole in one snapshot, by rebuild, verify and the small
-- projections, and split into ranges for a rebuild's jobs (projections/rebuild_jobs.py).

-- name: stream_events
-- Every event of the streams in the range [$1, $2), stream by stream (rebuild's bulk, verify
-- and the small projections, each in one snapshot).
SELECT position, transaction_id, stream_id, version, type, data, metadata, recorded_at
FROM events
WHERE stream_id >= $1 AND stream_id < $2
ORDER BY stream_id, version

-- name: stream_id_sample
-- Stream ids in the range [$1, $2) from about $3 percent of the log's pages: where to split the
-- range into parts of about the same number of events.
SELECT stream_id FROM events TABLESAMPLE SYSTEM ($3)
WHERE stream_id >= $1 AND stream_id < $2

-- name: stream_ids
-- Every event's stream id in the range [$1, $2) (a small log's, where a sample is too few).
SELECT stream_id FROM events WHERE stream_id >= $1 AND stream_id < $2
