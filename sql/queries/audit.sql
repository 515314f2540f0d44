-- Named statements of audit (app/audit/): history, replay, export, import, definition checks.

-- name: history
-- A flow's events with who, why and a summary (sql/migrations/0004_audit.sql), a version range.
SELECT version, "position", recorded_at, type, actor, reason, request_id, trace_id, summary,
       data, metadata
FROM flow_history($1)
WHERE version BETWEEN $2 AND $3
ORDER BY version

-- name: state_at_version
SELECT flow_state($1, $2, NULL)

-- name: state_as_of
SELECT flow_state($1, NULL, $2)
