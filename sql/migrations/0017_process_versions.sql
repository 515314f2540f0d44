-- The definition versions each running process can run (docs/operations.md, "Upgrades:
-- stranded flows"). A reactor claims only the versions it registered (a version is a content
-- hash), so a flow whose version no running process has waits for ever, silently; this table
-- is how every process, and every command, can tell. Each process that runs a reactor writes
-- its row when its reactor starts and again every few seconds (seen_at), and deletes it at a
-- clean stop; a process killed leaves its row, which stops counting at lapses_at (a few of its
-- intervals after it last wrote). Not derived from the log: it says who is running now, not
-- what happened, and a rebuild or an import leaves it alone.
CREATE TABLE process_versions (
    process_id text        COLLATE "C" PRIMARY KEY,
    versions   text[]      NOT NULL,
    seen_at    timestamptz NOT NULL,
    lapses_at  timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION flowlog_grant_runtime(runtime name) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    EXECUTE format('GRANT SELECT ON events, schema_migrations, callback_secret, log_removals, '
                   'archive_retention TO %I', runtime);
    EXECUTE format(
        'GRANT INSERT (stream_id, version, type, data, metadata) ON events TO %I', runtime);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON subscriptions TO %I', runtime);
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON flow_work, workflows, workflow_nodes, '
        'workflow_counts, workflow_definitions, idempotency_keys, schedules, archives, '
        'archived_flows, flow_children, task_workers, flow_slots, rate_limits, '
        'process_versions TO %I', runtime);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON api_keys TO %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_remove_archived(text, text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_wakes(text[], text[], text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_take(text, text, text, text, '
                   'timestamptz, integer) TO %I', runtime);
END;
$$;
