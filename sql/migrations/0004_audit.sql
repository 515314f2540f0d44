-- Audit from psql: a flow's history with who, why and what, and its state at any point, read
-- from the log alone. Documented in docs/audit.md; both are a public contract.
--
-- flow_state() is the fold of app/workflow/state.py written again in SQL, so that an operator
-- needs nothing but psql. tests/audit/test_sql_state.py holds the two to the same answers at
-- every version of random histories; an event schema change (an upcaster in events.py) must
-- be taught to both.

-- RFC 3339 in UTC with microseconds: the one time format of audit documents.
CREATE FUNCTION flowlog_time(at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');

-- One row per event of the flow, oldest first: when, what, who, why, and a line for people.
CREATE FUNCTION flow_history(flow_id text)
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

-- The flow as it was after event `up_to_version`, or after its last event recorded at or
-- before `as_of` (the longest such prefix); NULL when nothing of the flow existed then.
-- The same document as `flowlog replay --json` and GET /api/v1/workflow/{id}/state.
CREATE FUNCTION flow_state(
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
