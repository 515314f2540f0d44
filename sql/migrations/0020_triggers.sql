-- CloudEvents in (docs/events.md): event rules, and the events received.
--
-- Each rule is a stream `rule-<id>` (RuleCreated, RuleUpdated, RuleDeleted) and `event_rules`
-- its projection, written by each append's own statement and rebuilt from the log. Each event
-- received is a stream `cloudevent-<uuid5 of tenant, source, id>` (CloudEventReceived, one per
-- acceptance: the same source and id accepted again after the 24 h dedupe window is a second
-- event of that stream), and `received_events` its projection, one row per acceptance.
CREATE TABLE event_rules (
    id             text        COLLATE "C" PRIMARY KEY,
    tenant_id      text        NOT NULL,
    type           text        NOT NULL,
    -- NULL: an event from any source.
    source         text,
    flow_name      text        NOT NULL,
    -- Templates (app/paths.py) rendered from each event.
    biz_id         text        NOT NULL,
    context        jsonb       NOT NULL DEFAULT '{}',
    description    text        NOT NULL DEFAULT '',
    state          text        NOT NULL CHECK (state IN ('active', 'deleted')),
    created_at     timestamptz NOT NULL,
    created_by     text        NOT NULL,
    updated_at     timestamptz NOT NULL,
    updated_by     text        NOT NULL,
    stream_version bigint      NOT NULL
);
CREATE INDEX event_rules_by_type ON event_rules (tenant_id, type);
CREATE INDEX event_rules_by_tenant ON event_rules (tenant_id, created_at DESC, id);

CREATE TABLE received_events (
    stream_id      text        COLLATE "C" NOT NULL,
    version        bigint      NOT NULL,
    tenant_id      text        NOT NULL,
    source         text        NOT NULL,
    event_id       text        NOT NULL,
    type           text        NOT NULL,
    subject        text,
    time           timestamptz,
    received_at    timestamptz NOT NULL,
    position       bigint      NOT NULL,
    matched        boolean     NOT NULL,
    rules          text[]      NOT NULL DEFAULT '{}',
    flows          text[]      NOT NULL DEFAULT '{}',
    refused        integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (stream_id, version)
);
CREATE INDEX received_events_by_tenant ON received_events (tenant_id, position DESC);
CREATE INDEX received_events_unmatched ON received_events (tenant_id, position DESC)
    WHERE NOT matched;

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
        'event_rules, received_events TO %I', runtime);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON api_keys TO %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_remove_archived(text, text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_wakes(text[], text[], text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_take(text, text, text, text, '
                   'timestamptz, integer) TO %I', runtime);
END;
$$;
