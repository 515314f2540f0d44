-- The owner's retention, and a removal that checks it (docs/archival.md, "Who can remove").
-- The archiver runs as the runtime role, which writes the log: an ArchiveWritten event and a
-- seal in the log prove nothing about a file, since that role could have appended both. What
-- the database can check, it now checks before a flow leaves the hot log: the flow had ended
-- before its seal, its last change is older than the retention the owner set here, and its
-- seal names the archive that asks.

-- How long ended flows stay in the hot log, set by the owner (`flowlog migrate` writes the
-- environment's FLOWLOG_RETENTION and FLOWLOG_RETENTION_DEFINITIONS here). The runtime role
-- may read it, not change it. definition '' is the default for every definition without a
-- row of its own (a definition's name is never empty); keep NULL is off: kept for ever.
CREATE TABLE archive_retention (
    definition text        COLLATE "C" PRIMARY KEY,
    keep       interval    CHECK (keep >= interval '0'),
    set_at     timestamptz NOT NULL DEFAULT now(),
    set_by     text        NOT NULL DEFAULT session_user
);

-- Removes the events and rows of the listed flows that archive `archive_stream` recorded as
-- written (its first ArchiveWritten event, read from the log), each only if
--   * its stream still ends with its seal, at the version the archive holds,
--   * the seal names this archive,
--   * the flow had ended before the seal (its fold then is Finished, Error or Canceled), and
--   * its last change before the seal is older than the retention of its definition in
--     archive_retention (none, or off: never removed).
-- Any other listed flow is left as it is. Runs as the schema's owner (SECURITY DEFINER); the
-- runtime role may call it, and cannot delete any other way. Returns the number removed.
CREATE OR REPLACE FUNCTION flowlog_remove_archived(archive_stream text, flow_ids text[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    manifest jsonb;
    this_archive text;
    removable text[];
    gone record;
BEGIN
    IF archive_stream NOT LIKE 'archive-%' THEN
        RAISE EXCEPTION '% is not an archive''s stream', archive_stream USING ERRCODE = 'FL002';
    END IF;
    this_archive := substr(archive_stream, length('archive-') + 1);
    SELECT ev.data INTO manifest FROM events ev
    WHERE ev.stream_id = archive_stream AND ev.type = 'ArchiveWritten'
    ORDER BY ev.version LIMIT 1;
    IF manifest IS NULL THEN
        RAISE EXCEPTION 'no archive % is recorded as written in the log', archive_stream
            USING ERRCODE = 'FL002';
    END IF;
    SELECT coalesce(array_agg(listed.id ORDER BY listed.id), '{}') INTO removable
    FROM jsonb_to_recordset(manifest -> 'flows') AS listed(id text, version bigint)
    JOIN LATERAL (
        SELECT h.version, h.type, h.data FROM events h
        WHERE h.stream_id = 'flow-' || listed.id ORDER BY h.version DESC LIMIT 1
    ) AS head ON head.version = listed.version AND head.type = 'FlowArchived'
                 AND head.data ->> 'archive_id' = this_archive
    -- The flow as it was just before its seal, and when it last changed then.
    JOIN LATERAL (
        SELECT b.recorded_at AS at, flow_state(listed.id, listed.version - 1) AS state
        FROM events b
        WHERE b.stream_id = 'flow-' || listed.id AND b.version = listed.version - 1
    ) AS before ON before.state ->> 'status' IN ('Finished', 'Error', 'Canceled')
    -- Its definition's retention, else the default; no row at all is off.
    JOIN LATERAL (
        SELECT r.keep FROM archive_retention r
        WHERE r.definition IN (before.state ->> 'name', '')
        ORDER BY r.definition = '' LIMIT 1
    ) AS retention ON retention.keep IS NOT NULL AND before.at <= now() - retention.keep
    WHERE listed.id = ANY(flow_ids);
    IF cardinality(removable) = 0 THEN
        RETURN 0;
    END IF;
    -- The rows first, in id order: an append to one of these flows (there should be none:
    -- a sealed flow takes no command) waits here, or finds its stream head moved.
    PERFORM 1 FROM workflows w WHERE w.id = ANY(removable) ORDER BY w.id FOR UPDATE;
    PERFORM set_config('flowlog.removing', archive_stream, true);
    WITH d AS (
        DELETE FROM events ev
        WHERE ev.stream_id IN (SELECT 'flow-' || r FROM unnest(removable) AS r)
        RETURNING ev.position, ev.transaction_id
    )
    SELECT count(*) AS events, min(d.position) AS first_position,
           max(d.position) AS last_position, max(d.transaction_id) AS last_transaction_id
    INTO gone
    FROM d;
    PERFORM set_config('flowlog.removing', '', true);
    DELETE FROM workflow_nodes n WHERE n.flow_id = ANY(removable);
    DELETE FROM flow_work fw WHERE fw.flow_id = ANY(removable);
    -- The list totals' counters lose the removed rows (any shard will do: totals are sums;
    -- written in key order, as appends write them, so that the two never deadlock).
    WITH removed AS (
        DELETE FROM workflows w WHERE w.id = ANY(removable)
        RETURNING w.tenant_id, w.name, w.biz_type, w.status,
                  (abs(hashtext(w.id)) % 16)::smallint AS shard
    )
    INSERT INTO workflow_counts (tenant_id, name, biz_type, status, shard, count)
    SELECT r.tenant_id, r.name, r.biz_type, r.status, r.shard, -count(*)
    FROM removed r
    GROUP BY r.shard, r.tenant_id, r.name, r.biz_type, r.status
    ORDER BY r.shard, r.tenant_id, r.name, r.biz_type, r.status
    ON CONFLICT (tenant_id, name, biz_type, status, shard)
    DO UPDATE SET count = workflow_counts.count + EXCLUDED.count;
    INSERT INTO log_removals (record_stream, streams, events, first_position, last_position,
                              last_transaction_id)
    VALUES (archive_stream, cardinality(removable), gone.events, gone.first_position,
            gone.last_position, gone.last_transaction_id);
    RETURN cardinality(removable);
END;
$$;

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
        'archived_flows TO %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_remove_archived(text, text[]) TO %I',
                   runtime);
END;
$$;
