-- Retention and archival (docs/archival.md). Terminal flows past their retention leave the
-- hot log through one audited path: each is sealed by a FlowArchived event in its own stream,
-- its stream is written to an archive file whose checksum and flows an archive stream
-- (`archive-<id>`) records, and only then are its events and rows removed, by
-- flowlog_remove_archived(), which checks all of that in the log itself. Everyone else still
-- cannot delete from the log: the runtime role has no DELETE right on it, and the trigger
-- refuses a DELETE that does not come through that function.

-- What left the hot log, in log order: a catch-up subscription whose checkpoint is behind a
-- removal's last event would miss events, and is stopped with an error instead (eventstore).
CREATE TABLE log_removals (
    id                  bigserial   PRIMARY KEY,
    record_stream       text        COLLATE "C" NOT NULL,  -- the stream that authorised it
    streams             integer     NOT NULL,
    events              bigint      NOT NULL,
    first_position      bigint      NOT NULL,
    last_position       bigint      NOT NULL,
    last_transaction_id xid8        NOT NULL,
    removed_at          timestamptz NOT NULL DEFAULT now(),
    removed_by          text        NOT NULL DEFAULT session_user
);
CREATE INDEX log_removals_last ON log_removals (last_transaction_id, last_position);

-- Projections of the archive streams: one row per archive, one per archived flow (where a
-- removed flow went: the REST detail's 410, `flowlog history` and `replay` read them).
CREATE TABLE archives (
    id             text        COLLATE "C" PRIMARY KEY,
    status         text        NOT NULL,  -- Planned, Written, Removed
    file           text,
    sha256         text,
    bytes          bigint,
    flows          integer     NOT NULL,
    events         bigint,
    first_position bigint,
    last_position  bigint,
    removed        integer,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    stream_version bigint      NOT NULL
);
CREATE INDEX archives_unfinished ON archives (created_at) WHERE status <> 'Removed';

CREATE TABLE archived_flows (
    flow_id        text        COLLATE "C" PRIMARY KEY,
    archive_id     text        COLLATE "C" NOT NULL,
    tenant_id      text        NOT NULL,
    name           text        NOT NULL,
    status         text        NOT NULL,
    version        bigint      NOT NULL,  -- the stream's version in the archive (its seal)
    first_position bigint      NOT NULL,
    last_position  bigint      NOT NULL,
    archived_at    timestamptz NOT NULL
);
CREATE INDEX archived_flows_archive ON archived_flows (archive_id);

-- No index on workflows.updated_at for the archiver's choice: it changes with every event,
-- and an index on it would turn every update of a flow's row from a HOT update into one that
-- writes every index (measured: a fifth of create+start throughput). The archiver walks the
-- flows oldest created first instead (workflows_created_idx).

CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- flowlog_remove_archived() marks its own transaction; nothing else may delete.
    IF TG_OP = 'DELETE' AND current_setting('flowlog.removing', true) LIKE 'archive-%' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP
        USING ERRCODE = 'FL001', HINT = 'append a compensating event instead';
END;
$$;

-- Removes the events and rows of the listed flows that archive `archive_stream` recorded as
-- written (its ArchiveWritten event, read from the log), provided each stream still ends with
-- the seal at the version the archive holds: a flow that moved after it was archived is kept.
-- Runs as the schema's owner (SECURITY DEFINER); the runtime role may call it, and cannot
-- delete any other way. Returns the number of flows removed.
CREATE FUNCTION flowlog_remove_archived(archive_stream text, flow_ids text[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    manifest jsonb;
    removable text[];
    gone record;
BEGIN
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
        SELECT h.version, h.type FROM events h
        WHERE h.stream_id = 'flow-' || listed.id ORDER BY h.version DESC LIMIT 1
    ) AS head ON head.version = listed.version AND head.type = 'FlowArchived'
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
REVOKE ALL ON FUNCTION flowlog_remove_archived(text, text[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION flowlog_grant_runtime(runtime name) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    EXECUTE format('GRANT SELECT ON events, schema_migrations, callback_secret, log_removals '
                   'TO %I', runtime);
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

-- The fold and the history lines learn FlowArchived and FlowRestored (both functions are
-- replaced whole, as in 0007).
-- The line for people that flow_history() gives an event: one place for the words, used on
-- the log and on an archive's events alike.
CREATE FUNCTION flow_event_summary(event_type text, event_data jsonb, node_data jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE
RETURN
           CASE event_type
               WHEN 'FlowCreated' THEN
                   'created: ' || (event_data ->> 'name') || ' version '
                   || (event_data ->> 'definition_version') || ' for '
                   || (event_data ->> 'biz_type') || ' ' || (event_data ->> 'biz_id')
               WHEN 'FlowStarted' THEN 'started'
               WHEN 'FlowResumed' THEN 'resumed'
               WHEN 'FlowStopped' THEN 'stopped'
               WHEN 'CancelRequested' THEN 'cancel requested'
               WHEN 'FlowCanceled' THEN 'canceled'
                   || coalesce(' (node ' || (node_data ->> 'name') || ' interrupted)', '')
               WHEN 'FlowRetried' THEN 'retried from node ' || (event_data ->> 'from_key')
               WHEN 'ContextSet' THEN 'context: '
                   || concat_ws('; ',
                        (SELECT 'set ' || string_agg(k, ', ' ORDER BY k)
                         FROM jsonb_object_keys(event_data -> 'changes') k),
                        (SELECT 'removed ' || string_agg(k, ', ' ORDER BY k)
                         FROM jsonb_array_elements_text(event_data -> 'removed') k))
               WHEN 'NodeStarted' THEN
                   'node ' || (event_data ->> 'name') || ' started'
                   || CASE WHEN (event_data ->> 'attempt')::int > 1
                           THEN ' (attempt ' || (event_data ->> 'attempt') || ')' ELSE '' END
               WHEN 'NodeOperationSubmitted' THEN
                   'node ' || (node_data ->> 'name') || ' submitted operation '
                   || (event_data ->> 'operation_id')
               WHEN 'NodeWaiting' THEN
                   'node ' || (node_data ->> 'name') || ' waiting '
                   || CASE WHEN event_data ->> 'wake_at' IS NOT NULL
                           THEN 'until ' || (event_data ->> 'wake_at')
                           ELSE 'for callback ' || coalesce(event_data ->> 'callback', '')
                                || coalesce(', deadline ' || (event_data ->> 'deadline'), '')
                      END
               WHEN 'CallbackReceived' THEN
                   'node ' || (node_data ->> 'name') || ' completed by ' || (event_data ->> 'by')
                   || ': ' || (event_data ->> 'status')
                   || coalesce(' (callback ' || (event_data ->> 'callback') || ')', '')
               WHEN 'NodeSucceeded' THEN
                   'node ' || (node_data ->> 'name') || ' succeeded'
                   || coalesce(', next ' || (event_data ->> 'next'), ', end of path')
               WHEN 'NodeFailed' THEN
                   'node ' || (node_data ->> 'name') || ' failed: '
                   || (event_data ->> 'error_code') || ' ' || (event_data ->> 'error_message')
                   || CASE
                          WHEN (event_data ->> 'will_retry')::boolean
                              THEN ', retry at ' || (event_data ->> 'retry_at')
                          WHEN (event_data ->> 'pause')::boolean THEN ', flow paused'
                          ELSE coalesce(', next ' || (event_data ->> 'next'), ', end of path')
                      END
               WHEN 'FlowFinished' THEN 'finished'
               WHEN 'FlowArchived' THEN 'archived (archive ' || (event_data ->> 'archive_id') || ')'
               WHEN 'FlowRestored' THEN
                   'restored from archive ' || (event_data ->> 'archive_id')
               WHEN 'FlowFailed' THEN
                   'ended in Error: ' || (event_data ->> 'error_code') || ' '
                   || (event_data ->> 'error_message')
               ELSE event_type
           END;

CREATE OR REPLACE FUNCTION flow_history(flow_id text)
RETURNS TABLE (
    version     bigint,
    "position"  bigint,
    recorded_at timestamptz,
    type        text,
    actor       text,
    reason      text,
    request_id  text,
    trace_id    text,
    summary     text,
    data        jsonb,
    metadata    jsonb
)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT e.version, e.position, e.recorded_at, e.type,
           coalesce(e.metadata ->> 'actor', ''),
           coalesce(e.metadata ->> 'reason', e.data ->> 'reason', ''),
           e.metadata ->> 'request_id',
           e.metadata ->> 'trace_id',
           flow_event_summary(e.type, e.data, n.data),
           e.data, e.metadata
    FROM events e
    -- The NodeStarted event of the node an event is about (its name is recorded there).
    LEFT JOIN LATERAL (
        SELECT s.data FROM events s
        WHERE s.stream_id = e.stream_id AND s.type = 'NodeStarted'
          AND s.data ->> 'node_id' = e.data ->> 'node_id'
        LIMIT 1
    ) n ON e.data ? 'node_id' AND e.type <> 'NodeStarted'
    WHERE e.stream_id = 'flow-' || flow_history.flow_id
    ORDER BY e.version;
END;

-- The same lines for events that are not in the log: an archived flow's, read from its archive
-- file (a JSON array of the export format's event objects).
CREATE FUNCTION flow_history_of(archived jsonb)
RETURNS TABLE (
    version     bigint,
    "position"  bigint,
    recorded_at timestamptz,
    type        text,
    actor       text,
    reason      text,
    request_id  text,
    trace_id    text,
    summary     text,
    data        jsonb,
    metadata    jsonb
)
LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
    WITH e AS (
        SELECT * FROM jsonb_to_recordset(archived) AS x(
            version bigint, "position" bigint, recorded_at timestamptz, type text, data jsonb,
            metadata jsonb)
    )
    SELECT e.version, e.position, e.recorded_at, e.type,
           coalesce(e.metadata ->> 'actor', ''),
           coalesce(e.metadata ->> 'reason', e.data ->> 'reason', ''),
           e.metadata ->> 'request_id',
           e.metadata ->> 'trace_id',
           flow_event_summary(e.type, e.data, n.data),
           e.data, e.metadata
    FROM e
    LEFT JOIN LATERAL (
        SELECT s.data FROM e s
        WHERE s.type = 'NodeStarted' AND s.data ->> 'node_id' = e.data ->> 'node_id'
        LIMIT 1
    ) n ON e.data ? 'node_id' AND e.type <> 'NodeStarted'
    ORDER BY e.version;
END;

CREATE OR REPLACE FUNCTION flow_state(
    flow_id text, up_to_version bigint DEFAULT NULL, as_of timestamptz DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    e            record;
    created      jsonb;
    version      bigint := 0;
    updated_at   timestamptz;
    status       text;
    context      jsonb;
    next_key     text := 'start';
    failed_path  boolean := false;
    failed_key   text;
    error_code   integer;
    error_message text;
    reason       text := '';
    done         jsonb := '[]';  -- node executions that can no longer change
    node         jsonb;          -- the last node execution (only the last one ever changes)
BEGIN
    FOR e IN
        SELECT ev.version, ev.type, ev.data AS d, ev.recorded_at AS at
        FROM events ev
        WHERE ev.stream_id = 'flow-' || flow_state.flow_id
          AND (up_to_version IS NULL OR ev.version <= up_to_version)
        ORDER BY ev.version
    LOOP
        EXIT WHEN as_of IS NOT NULL AND e.at > as_of;
        version := e.version;
        updated_at := e.at;
        CASE e.type
        WHEN 'FlowCreated' THEN
            created := e.d;
            status := 'Initializing';
            context := coalesce(e.d -> 'context', '{}');
        WHEN 'ContextSet' THEN
            context := (context || coalesce(e.d -> 'changes', '{}'))
                       - ARRAY(SELECT jsonb_array_elements_text(coalesce(e.d -> 'removed', '[]')));
        WHEN 'FlowStarted', 'FlowResumed' THEN
            status := 'Processing';
        WHEN 'FlowStopped' THEN
            status := 'Stopped';
            reason := coalesce(e.d ->> 'reason', '');
        WHEN 'CancelRequested' THEN
            status := 'Canceling';
            reason := coalesce(e.d ->> 'reason', '');
        WHEN 'FlowCanceled' THEN
            status := 'Canceled';
            reason := coalesce(e.d ->> 'reason', '');
            IF e.d ->> 'node_id' IS NOT NULL THEN
                node := node || jsonb_build_object('status', 'Canceled', 'endTime', flowlog_time(e.at));
            END IF;
        WHEN 'FlowRetried' THEN
            status := 'Processing';
            next_key := e.d ->> 'from_key';
            failed_path := false;
            failed_key := NULL;
            error_code := NULL;
            error_message := NULL;
        WHEN 'NodeStarted' THEN
            IF node IS NOT NULL THEN
                done := done || jsonb_build_array(node);
            END IF;
            node := jsonb_build_object(
                'id', e.d ->> 'node_id', 'key', e.d ->> 'key', 'name', e.d ->> 'name',
                'kind', e.d ->> 'kind', 'attempt', (e.d ->> 'attempt')::int,
                'status', 'Processing', 'startTime', flowlog_time(e.at), 'endTime', NULL,
                'operationId', NULL, 'result', '', 'errorCode', NULL, 'errorMessage', NULL);
            next_key := e.d ->> 'key';
        WHEN 'NodeOperationSubmitted' THEN
            node := node || jsonb_build_object('operationId', e.d ->> 'operation_id');
            context := (context || coalesce(e.d -> 'context_changes', '{}'))
                       - ARRAY(SELECT jsonb_array_elements_text(coalesce(e.d -> 'context_removed', '[]')));
        WHEN 'NodeWaiting' THEN
            context := (context || coalesce(e.d -> 'context_changes', '{}'))
                       - ARRAY(SELECT jsonb_array_elements_text(coalesce(e.d -> 'context_removed', '[]')));
        WHEN 'CallbackReceived' THEN
            NULL;  -- who completed the node; its outcome is the next event
        WHEN 'NodeSucceeded' THEN
            node := node || jsonb_build_object(
                'status', 'Finished', 'endTime', flowlog_time(e.at),
                'result', coalesce(e.d ->> 'result', ''));
            context := (context || coalesce(e.d -> 'context_changes', '{}'))
                       - ARRAY(SELECT jsonb_array_elements_text(coalesce(e.d -> 'context_removed', '[]')));
            next_key := e.d ->> 'next';
        WHEN 'NodeFailed' THEN
            node := node || jsonb_build_object(
                'status', 'Error', 'endTime', flowlog_time(e.at),
                'result', coalesce(e.d ->> 'result', ''),
                'errorCode', (e.d ->> 'error_code')::int, 'errorMessage', e.d ->> 'error_message');
            context := (context || coalesce(e.d -> 'context_changes', '{}'))
                       - ARRAY(SELECT jsonb_array_elements_text(coalesce(e.d -> 'context_removed', '[]')));
            IF NOT coalesce((e.d ->> 'will_retry')::boolean, false) THEN
                IF coalesce((e.d ->> 'pause')::boolean, false) THEN
                    status := 'Stopped';
                ELSE
                    next_key := e.d ->> 'next';
                    IF NOT failed_path THEN
                        failed_path := true;
                        failed_key := node ->> 'key';
                        error_code := (e.d ->> 'error_code')::int;
                        error_message := e.d ->> 'error_message';
                    END IF;
                END IF;
            END IF;
        WHEN 'FlowFinished' THEN
            status := 'Finished';
            next_key := NULL;
        WHEN 'FlowArchived', 'FlowRestored' THEN
            NULL;  -- bookkeeping of retention: the flow's state is as it was
        WHEN 'FlowFailed' THEN
            status := 'Error';
            next_key := NULL;
            error_code := (e.d ->> 'error_code')::int;
            error_message := e.d ->> 'error_message';
        ELSE
            RAISE EXCEPTION 'flow %: unknown event type % at version %',
                flow_state.flow_id, e.type, e.version;
        END CASE;
    END LOOP;
    IF created IS NULL THEN
        RETURN NULL;
    END IF;
    IF node IS NOT NULL THEN
        done := done || jsonb_build_array(node);
    END IF;
    RETURN jsonb_build_object(
        'flowId', created ->> 'flow_id',
        'name', created ->> 'name',
        'definitionVersion', created ->> 'definition_version',
        'version', version,
        'updatedAt', flowlog_time(updated_at),
        'status', status,
        'currentNode', CASE WHEN node ->> 'status' = 'Processing' THEN node ->> 'name' END,
        'nextNodeKey', next_key,
        'failedNodeKey', failed_key,
        'errorCode', error_code,
        'errorMessage', error_message,
        'reason', reason,
        'context', context,
        'nodes', done);
END;
$$;
