-- API keys (docs/access.md): each key is a stream `key-<id>` in the log (KeyCreated, then
-- KeyRevoked), and this table is its projection, written by each append's own statement. The
-- key itself is never stored: only its SHA-256 (`digest`) and its first characters (`prefix`).
-- Every process keeps the table in memory and reloads it when `flowlog_access` is notified
-- (a create or a revocation), so a revoked key is refused everywhere within a second.
CREATE TABLE api_keys (
    id            text        COLLATE "C" PRIMARY KEY,
    tenant_id     text        NOT NULL,
    name          text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin', 'superadmin')),
    prefix        text        NOT NULL,
    digest        text        NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    created_by    text        NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    revoked_by    text,
    revoke_reason text,
    -- Not an event: written at most every few seconds per process from its uses, so that a
    -- person can see which keys are still in use. A rebuild from the log leaves it empty.
    last_used_at  timestamptz,
    stream_version bigint     NOT NULL,
    -- A name says one key of its tenant for ever: the log's actor `key:<name>` must not
    -- stand for two keys.
    CONSTRAINT api_keys_name_key UNIQUE (tenant_id, name)
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
        'archived_flows, flow_children, task_workers, flow_slots, rate_limits TO %I', runtime);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON api_keys TO %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_remove_archived(text, text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_wakes(text[], text[], text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_take(text, text, text, text, '
                   'timestamptz, integer) TO %I', runtime);
END;
$$;
