-- Named statements of CloudEvents in (app/triggers/): the event_rules and received_events
-- projections, and what reads them.

-- name: rule_written
-- A rule's row after an append to its stream, in the append's own statement (it acts only
-- when the append did): $1..$9 its settings and state, $10 the actor. A create writes the
-- row; later appends keep its creation.
INSERT INTO event_rules (id, tenant_id, type, source, flow_name, biz_id, context, description,
                         state, created_at, created_by, updated_at, updated_by,
                         stream_version)
SELECT $1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, a.recorded_at, $10, a.recorded_at, $10,
       a.version
FROM appended AS a
LIMIT 1
ON CONFLICT (id) DO UPDATE
SET type = EXCLUDED.type, source = EXCLUDED.source, flow_name = EXCLUDED.flow_name,
    biz_id = EXCLUDED.biz_id, context = EXCLUDED.context, description = EXCLUDED.description,
    state = EXCLUDED.state, updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by,
    stream_version = EXCLUDED.stream_version

-- name: rule
SELECT id, tenant_id, type, source, flow_name, biz_id, context, description, state,
       created_at, created_by, updated_at, updated_by, stream_version
FROM event_rules WHERE id = $1

-- name: rules
-- The active rules of tenant $1 (NULL: every tenant), newest first, after cursor ($2
-- created_at, $3 id) when given; $4 rows; $5 a type or NULL.
SELECT id, tenant_id, type, source, flow_name, biz_id, context, description, state,
       created_at, created_by, updated_at, updated_by, stream_version
FROM event_rules
WHERE state = 'active'
  AND ($1::text IS NULL OR tenant_id = $1)
  AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::text))
  AND ($5::text IS NULL OR type = $5)
ORDER BY created_at DESC, id DESC
LIMIT $4

-- name: active_of_type
-- How many active rules tenant $1 has for event type $2.
SELECT count(*) FROM event_rules WHERE tenant_id = $1 AND type = $2 AND state = 'active'

-- name: matching
-- The active rules of tenant $1 that an event of type $2 from source $3 matches (at most $4,
-- in id order: every process starts the same ones).
SELECT id, tenant_id, type, source, flow_name, biz_id, context, description, state,
       created_at, created_by, updated_at, updated_by, stream_version
FROM event_rules
WHERE tenant_id = $1 AND type = $2 AND state = 'active' AND (source IS NULL OR source = $3)
ORDER BY id
LIMIT $4

-- name: received
-- An event's row, in its CloudEventReceived append's own statement.
INSERT INTO received_events (stream_id, version, tenant_id, source, event_id, type, subject,
                             time, received_at, position, matched, rules, flows, refused)
SELECT $1, a.version, $2, $3, $4, $5, $6, $7, a.recorded_at, a.position, $8, $9::text[],
       $10::text[], $11
FROM appended AS a
LIMIT 1

-- name: events
-- The received events of tenant $1 (NULL: every tenant), newest first, before position $2
-- (NULL: from the newest); $3 rows; $4 matched or not (NULL: both); $5 a type or NULL.
SELECT stream_id, version, tenant_id, source, event_id, type, subject, time, received_at,
       position, matched, rules, flows, refused
FROM received_events
WHERE ($1::text IS NULL OR tenant_id = $1)
  AND ($2::bigint IS NULL OR position < $2)
  AND ($4::boolean IS NULL OR matched = $4)
  AND ($5::text IS NULL OR type = $5)
ORDER BY position DESC
LIMIT $3

-- name: restore_rule
-- A rule's row from its stream's fold (flowlog rebuild, import).
INSERT INTO event_rules (id, tenant_id, type, source, flow_name, biz_id, context, description,
                         state, created_at, created_by, updated_at, updated_by,
                         stream_version)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (id) DO UPDATE
SET type = EXCLUDED.type, source = EXCLUDED.source, flow_name = EXCLUDED.flow_name,
    biz_id = EXCLUDED.biz_id, context = EXCLUDED.context, description = EXCLUDED.description,
    state = EXCLUDED.state, created_at = EXCLUDED.created_at,
    created_by = EXCLUDED.created_by, updated_at = EXCLUDED.updated_at,
    updated_by = EXCLUDED.updated_by, stream_version = EXCLUDED.stream_version

-- name: restore_received
-- An event's row from its stream's event (flowlog rebuild, import).
INSERT INTO received_events (stream_id, version, tenant_id, source, event_id, type, subject,
                             time, received_at, position, matched, rules, flows, refused)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (stream_id, version) DO UPDATE
SET tenant_id = EXCLUDED.tenant_id, source = EXCLUDED.source, event_id = EXCLUDED.event_id,
    type = EXCLUDED.type, subject = EXCLUDED.subject, time = EXCLUDED.time,
    received_at = EXCLUDED.received_at, position = EXCLUDED.position,
    matched = EXCLUDED.matched, rules = EXCLUDED.rules, flows = EXCLUDED.flows,
    refused = EXCLUDED.refused

-- name: rule_rows
-- Every rule's row (flowlog verify).
SELECT id, tenant_id, type, source, flow_name, biz_id, context, description, state,
       created_at, created_by, updated_at, updated_by, stream_version
FROM event_rules

-- name: received_rows
-- Every received event's row (flowlog verify).
SELECT stream_id, version, tenant_id, source, event_id, type, subject, time, received_at,
       position, matched, rules, flows, refused
FROM received_events

-- name: definition_known
-- Whether a definition of this name that tenant $2 may start (NULL: any) was ever recorded in
-- the log (by any process).
SELECT EXISTS (
    SELECT 1 FROM workflow_definitions WHERE name = $1 AND definition_visible(tenant_id, $2)
)
