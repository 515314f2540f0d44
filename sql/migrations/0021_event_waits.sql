-- Callback nodes that wait for a CloudEvent (docs/workflows.md, "Callback nodes that wait for
-- an event"). A projection of the flows' streams, written by the append's own statement: a
-- row while a callback node with an event waits (NodeWaiting with "event"), gone with the
-- append that ends the wait (its outcome, the deadline, a cancel). An incoming event of the
-- tenant looks its rows up by (tenant, type) and tests containment (the event's data @> the
-- rendered match) on those few: a GIN index on match would serve "match @> x", not the
-- "match <@ data" asked here, and an event's data cannot be indexed before it arrives.
CREATE TABLE event_waits (
    node_id    text PRIMARY KEY,
    flow_id    text NOT NULL,
    tenant_id  text NOT NULL,
    event_type text NOT NULL,
    match      jsonb NOT NULL,
    since      timestamptz NOT NULL
);
CREATE INDEX event_waits_by_type ON event_waits (tenant_id, event_type);
CREATE INDEX event_waits_by_flow ON event_waits (flow_id);

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
        'process_versions, webhooks, webhook_deliveries, webhook_lanes, webhook_status, '
        'event_rules, received_events, event_waits TO %I', runtime);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON api_keys TO %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_remove_archived(text, text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_wakes(text[], text[], text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_take(text, text, text, text, '
                   'timestamptz, integer) TO %I', runtime);
END;
$$;

-- The history's line of a NodeWaiting names the event a callback node waits for (the
-- function replaced whole, as in 0018; nothing changes for other nodes' lines).
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
                                || coalesce(' or event ' || (event_data #>> '{event,type}'), '')
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
