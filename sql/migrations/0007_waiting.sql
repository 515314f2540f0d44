-- Flows that wait on the outside world (docs/workflows.md, "Timers and callbacks"): the fold
-- and the history lines learn NodeWaiting and CallbackReceived (both functions are replaced
-- whole: tests/audit/test_sql_state.py holds flow_state() equal to Python's fold), and the
-- secret that callback tokens are signed with.

-- One row: the key of the HMAC that makes a callback token from a node execution id and its
-- tenant (app/workflow/callbacks.py). It is not in the log: a token is a bearer credential,
-- and the log is readable by more people than may complete nodes. gen_random_uuid() draws
-- from the server's strong random source; two of them make 244 random bits.
CREATE TABLE callback_secret (
    id     boolean PRIMARY KEY DEFAULT true CHECK (id),
    secret text    NOT NULL
);
INSERT INTO callback_secret (secret)
VALUES (replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));

CREATE OR REPLACE FUNCTION flowlog_grant_runtime(runtime name) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    EXECUTE format('GRANT SELECT ON events, schema_migrations, callback_secret TO %I', runtime);
    EXECUTE format(
        'GRANT INSERT (stream_id, version, type, data, metadata) ON events TO %I', runtime);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON subscriptions TO %I', runtime);
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON flow_work, workflows, workflow_nodes, '
        'workflow_counts, workflow_definitions, idempotency_keys TO %I', runtime);
END;
$$;

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
           CASE e.type
               WHEN 'FlowCreated' THEN
                   'created: ' || (e.data ->> 'name') || ' version '
                   || (e.data ->> 'definition_version') || ' for '
                   || (e.data ->> 'biz_type') || ' ' || (e.data ->> 'biz_id')
               WHEN 'FlowStarted' THEN 'started'
               WHEN 'FlowResumed' THEN 'resumed'
               WHEN 'FlowStopped' THEN 'stopped'
               WHEN 'CancelRequested' THEN 'cancel requested'
               WHEN 'FlowCanceled' THEN 'canceled'
                   || coalesce(' (node ' || (n.data ->> 'name') || ' interrupted)', '')
               WHEN 'FlowRetried' THEN 'retried from node ' || (e.data ->> 'from_key')
               WHEN 'ContextSet' THEN 'context: '
                   || concat_ws('; ',
                        (SELECT 'set ' || string_agg(k, ', ' ORDER BY k)
                         FROM jsonb_object_keys(e.data -> 'changes') k),
                        (SELECT 'removed ' || string_agg(k, ', ' ORDER BY k)
                         FROM jsonb_array_elements_text(e.data -> 'removed') k))
               WHEN 'NodeStarted' THEN
                   'node ' || (e.data ->> 'name') || ' started'
                   || CASE WHEN (e.data ->> 'attempt')::int > 1
                           THEN ' (attempt ' || (e.data ->> 'attempt') || ')' ELSE '' END
               WHEN 'NodeOperationSubmitted' THEN
                   'node ' || (n.data ->> 'name') || ' submitted operation '
                   || (e.data ->> 'operation_id')
               WHEN 'NodeWaiting' THEN
                   'node ' || (n.data ->> 'name') || ' waiting '
                   || CASE WHEN e.data ->> 'wake_at' IS NOT NULL
                           THEN 'until ' || (e.data ->> 'wake_at')
                           ELSE 'for callback ' || coalesce(e.data ->> 'callback', '')
                                || coalesce(', deadline ' || (e.data ->> 'deadline'), '')
                      END
               WHEN 'CallbackReceived' THEN
                   'node ' || (n.data ->> 'name') || ' completed by ' || (e.data ->> 'by')
                   || ': ' || (e.data ->> 'status')
                   || coalesce(' (callback ' || (e.data ->> 'callback') || ')', '')
               WHEN 'NodeSucceeded' THEN
                   'node ' || (n.data ->> 'name') || ' succeeded'
                   || coalesce(', next ' || (e.data ->> 'next'), ', end of path')
               WHEN 'NodeFailed' THEN
                   'node ' || (n.data ->> 'name') || ' failed: '
                   || (e.data ->> 'error_code') || ' ' || (e.data ->> 'error_message')
                   || CASE
                          WHEN (e.data ->> 'will_retry')::boolean
                              THEN ', retry at ' || (e.data ->> 'retry_at')
                          WHEN (e.data ->> 'pause')::boolean THEN ', flow paused'
                          ELSE coalesce(', next ' || (e.data ->> 'next'), ', end of path')
                      END
               WHEN 'FlowFinished' THEN 'finished'
               WHEN 'FlowFailed' THEN
                   'ended in Error: ' || (e.data ->> 'error_code') || ' '
                   || (e.data ->> 'error_message')
               ELSE e.type
           END,
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
