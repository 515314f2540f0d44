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
        'event_waits TO %I', runtime);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON api_keys TO %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_remove_archived(text, text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_wakes(text[], text[], text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_take(text, text, text, text, '
                   'timestamptz, integer) TO %I', runtime);
END;
$$;
