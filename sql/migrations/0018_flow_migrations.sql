-- Moving running flows to another version of their definition (docs/workflows.md, "Moving
-- flows to another version"): a FlowMigrated event names the version a flow leaves, the one
-- it goes to and how node keys are renamed. The fold and the history lines learn it (both
-- functions replaced whole, as in 0007, 0009 and 0012; flow_history() and flow_history_of()
-- call the summary by name and need no change). The projection's columns it changes
-- (workflows.definition_version, workflow_nodes.node_key, flow_work.definition_version) are
-- written by the append's own statements, as every other event's are: no schema change.
CREATE OR REPLACE FUNCTION flow_event_summary(event_type text, event_data jsonb, node_data jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE
RETURN
           CASE event_type
               WHEN 'FlowCreated' THEN
                   'created: ' || (event_data ->> 'name') || ' version '
                   || (event_data ->> 'definition_version') || ' for '
                   || (event_data ->> 'biz_type') || ' ' || (event_data ->> 'biz_id')
                   || coalesce(', child ' || (event_data #>> '{parent,index}') || ' of flow '
                               || (event_data #>> '{parent,flow_id}')
                               || coalesce(' (branch ' || (event_data #>> '{parent,branch}')
                                           || ')', ''), '')
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
               WHEN 'ChildrenStarted' THEN
                   CASE WHEN (event_data ->> 'count')::int = 1
                        THEN 'child ' || (event_data ->> 'first')
                        ELSE 'children ' || (event_data ->> 'first') || '-'
                             || ((event_data ->> 'first')::int + (event_data ->> 'count')::int - 1)
                   END
                   || ' of ' || (event_data ->> 'total') || ' started'
                   || CASE WHEN (event_data ->> 'limit')::int < (event_data ->> 'total')::int
                           THEN ' (at most ' || (event_data ->> 'limit') || ' at once)'
                           ELSE '' END
               -- Counts by status; the indexes of those that did not finish (the first ten:
               -- a harvest of a large map can hold thousands).
               WHEN 'ChildrenEnded' THEN
                   'children ended: ' || coalesce((
                       SELECT string_agg(
                                  g.n || ' ' || g.word
                                  || CASE WHEN g.word = 'finished' THEN ''
                                          ELSE ' (' || CASE WHEN g.n = 1 THEN 'index '
                                                            ELSE 'indexes ' END
                                               || array_to_string(g.indexes[1:10], ', ')
                                               || CASE WHEN g.n > 10 THEN ', ...' ELSE '' END
                                               || ')'
                                     END,
                                  ', ' ORDER BY g.rank, g.word)
                       FROM (
                           SELECT CASE x ->> 1 WHEN 'Finished' THEN 'finished'
                                               WHEN 'Error' THEN 'failed'
                                               ELSE lower(x ->> 1) END AS word,
                                  CASE x ->> 1 WHEN 'Finished' THEN 1 WHEN 'Error' THEN 2
                                               WHEN 'Canceled' THEN 3 ELSE 4 END AS rank,
                                  count(*) AS n,
                                  array_agg((x ->> 0)::int ORDER BY (x ->> 0)::int) AS indexes
                           FROM jsonb_array_elements(event_data -> 'ended') x
                           GROUP BY 1, 2
                       ) g), 'none')
               -- The indexes the command names, if any (the first ten).
               WHEN 'ChildrenCommanded' THEN (
                   SELECT CASE WHEN event_data ->> 'command' = 'retry' THEN 'failed ' ELSE '' END
                          || CASE WHEN l.n = 1 THEN 'child ' ELSE 'children ' END
                          || coalesce(l.shown || ' ', '')
                          || CASE WHEN event_data ->> 'command' <> 'retry'
                                  THEN 'told to ' || (event_data ->> 'command')
                                  WHEN l.n = 1 THEN 'runs again'
                                  ELSE 'run again' END
                   FROM (
                       SELECT count(*) AS n,
                              string_agg(i, ', ' ORDER BY o) FILTER (WHERE o <= 10)
                              || CASE WHEN count(*) > 10 THEN ', ...' ELSE '' END AS shown
                       FROM jsonb_array_elements_text(coalesce(event_data -> 'indexes', '[]'))
                            WITH ORDINALITY AS t(i, o)
                   ) l)
               -- The renamed keys in key order (a node map names a handful).
               WHEN 'FlowMigrated' THEN
                   'migrated from version ' || (event_data ->> 'from_version') || ' to '
                   || (event_data ->> 'to_version')
                   || coalesce((SELECT ' (node ' || string_agg(m.key || ' → ' || m.value, ', '
                                                               ORDER BY m.key) || ')'
                                FROM jsonb_each_text(coalesce(event_data -> 'node_map', '{}')) m
                                WHERE m.key <> m.value), '')
               ELSE event_type
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
    next_key     text;
    failed_path  boolean := false;
    failed_key   text;
    error_code   integer;
    error_message text;
    reason       text := '';
    done         jsonb := '[]';  -- node executions that can no longer change
    node         jsonb;          -- the last node execution (only the last one ever changes)
    on_version   text;           -- the definition version the flow runs under
    renames      jsonb;          -- a migration's node map
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
            on_version := e.d ->> 'definition_version';
            status := 'Initializing';
            context := coalesce(e.d -> 'context', '{}');
            next_key := coalesce(e.d ->> 'entry', 'start');  -- a parallel branch's first node
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
        WHEN 'ChildrenStarted', 'ChildrenEnded', 'ChildrenCommanded' THEN
            NULL;  -- counts of the running node's children, not in the document
        WHEN 'FlowMigrated' THEN
            IF e.d ->> 'from_version' IS DISTINCT FROM on_version THEN
                RAISE EXCEPTION 'flow %: migrated from version % at version %, but it is on %',
                    flow_state.flow_id, e.d ->> 'from_version', e.version, on_version;
            END IF;
            on_version := e.d ->> 'to_version';
            -- Every node key the state holds is renamed, as the Python fold does: where it goes
            -- on, what Retry runs again, and every execution's key (names stay as recorded).
            renames := coalesce(e.d -> 'node_map', '{}');
            next_key := coalesce(renames ->> next_key, next_key);
            failed_key := coalesce(renames ->> failed_key, failed_key);
            done := coalesce((
                SELECT jsonb_agg(CASE WHEN renames ? (x ->> 'key')
                                      THEN x || jsonb_build_object('key', renames ->> (x ->> 'key'))
                                      ELSE x END ORDER BY o)
                FROM jsonb_array_elements(done) WITH ORDINALITY AS t(x, o)), '[]');
            IF node IS NOT NULL AND renames ? (node ->> 'key') THEN
                node := node || jsonb_build_object('key', renames ->> (node ->> 'key'));
            END IF;
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
        'definitionVersion', on_version,
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
