-- Flow control (docs/workers.md, "Flow control"): concurrency limits per key value, rate limits,
-- priorities.
--
-- A slot of a concurrency limit: a flow holding one (holding) runs, a flow waiting for one
-- waits in the order flows were created (queued_at, the flow's creation time). scope is
-- 'flow:<definition>' (flows running at once) or 'node:<definition>/<node key>' (executions
-- at once); key_value the flow's value of the limit's key. Slots are taken by the reactor
-- before it starts a node, under a transaction-scoped advisory lock per (scope, key value), and
-- given back by the append that ends what holds them (the flow's end, the node's outcome),
-- which also wakes the oldest waiters (woken, and their flow_work rows made due). Operational
-- state like flow_work's leases: the log says what ran, this says who may run next.
CREATE TABLE flow_slots (
    scope      text        NOT NULL,
    key_value  text        NOT NULL,
    flow_id    text        NOT NULL,
    tenant_id  text        NOT NULL,
    holding    boolean     NOT NULL,
    queued_at  timestamptz NOT NULL,
    woken      boolean     NOT NULL DEFAULT false,
    since      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key_value, flow_id)
);

CREATE INDEX flow_slots_flow_idx ON flow_slots (flow_id);
CREATE INDEX flow_slots_waiting_idx ON flow_slots (scope, key_value, queued_at, flow_id)
    WHERE NOT holding;

-- Flow p_flow (tenant p_tenant, created at p_queued) asks for a slot of (p_scope, p_key) whose
-- limit is p_limit: it holds one already, or it takes one when the holders and the waiters created
-- before it leave room, or it waits (its row says so). One statement for the caller: the
-- advisory lock makes the takers of one (scope, key) one at a time, and each statement of this
-- function reads with a snapshot taken after it got the lock (READ COMMITTED), so it counts
-- every take committed before. The lock ends with the caller's transaction.
CREATE FUNCTION flowlog_slot_take(p_scope text, p_key text, p_flow text, p_tenant text,
                                  p_queued timestamptz, p_limit integer)
RETURNS TABLE (holding boolean, ahead bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    held boolean;
    holders bigint;
    before bigint;
BEGIN
    SELECT s.holding INTO held FROM flow_slots s
    WHERE s.scope = p_scope AND s.key_value = p_key AND s.flow_id = p_flow;
    IF held THEN
        RETURN QUERY SELECT true, 0::bigint;
        RETURN;
    END IF;
    -- Its commit need not wait for the disk: the append that starts the node commits after
    -- it, synchronously, and the log is flushed in order, so the slot is on disk whenever the
    -- start is (a waiter's row lost to a crash is written again when it looks again).
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_advisory_xact_lock(hashtextextended(p_scope || chr(31) || p_key, 0));
    SELECT count(*) FILTER (WHERE s.holding),
           count(*) FILTER (WHERE NOT s.holding AND (s.queued_at, s.flow_id) < (p_queued, p_flow))
    INTO holders, before
    FROM flow_slots s
    WHERE s.scope = p_scope AND s.key_value = p_key AND s.flow_id <> p_flow;
    INSERT INTO flow_slots AS s (scope, key_value, flow_id, tenant_id, holding, queued_at)
    VALUES (p_scope, p_key, p_flow, p_tenant, holders + before < p_limit, p_queued)
    ON CONFLICT (scope, key_value, flow_id) DO UPDATE
    SET holding = EXCLUDED.holding, woken = false,
        since = CASE WHEN EXCLUDED.holding AND NOT s.holding THEN now() ELSE s.since END;
    RETURN QUERY SELECT holders + before < p_limit, before;
END;
$$;

-- The waiters to wake when flows $1 give back their slots but those they keep (pairs of flow
-- kept_flows[i] and scope kept_scopes[i]): for each (scope, key value), the oldest waiters, as
-- many as slots are given back. Read by the two statements of an append that wake them (its
-- slots' rows, its flow_work rows): both see the append's snapshot, so they agree.
CREATE FUNCTION flowlog_slot_wakes(flows text[], kept_flows text[], kept_scopes text[])
RETURNS TABLE (scope text, key_value text, flow_id text)
LANGUAGE sql STABLE AS $$
    WITH freed AS (
        SELECT s.scope, s.key_value, count(*) AS n
        FROM flow_slots s
        WHERE s.flow_id = ANY(flows) AND s.holding
          AND NOT EXISTS (SELECT FROM unnest(kept_flows, kept_scopes) AS k(flow_id, scope)
                          WHERE k.flow_id = s.flow_id AND k.scope = s.scope)
        GROUP BY s.scope, s.key_value
    )
    SELECT f.scope, f.key_value, oldest.flow_id
    FROM freed f, LATERAL (
        SELECT x.flow_id FROM flow_slots x
        WHERE x.scope = f.scope AND x.key_value = f.key_value AND NOT x.holding
        ORDER BY x.queued_at, x.flow_id LIMIT f.n
    ) AS oldest
$$;

-- A rate limit's next allowed start per (scope, key value): starts are spaced by the period
-- divided by the limit (a start is allowed when its time has come, and moves it on).
CREATE TABLE rate_limits (
    scope      text        NOT NULL,
    key_value  text        NOT NULL,
    next_start timestamptz NOT NULL,
    PRIMARY KEY (scope, key_value)
);

-- Priority: among due work, higher first (0 to 9, the flow's, from its FlowCreated).
CREATE INDEX flow_work_priority_idx ON flow_work (priority DESC, due_at) WHERE priority > 0;

-- Fairness: a claim visits tenants in turn (the next after the last it visited) and takes each
-- one's oldest due flow first. Flows without a tenant (an open server's) are not in the index:
-- an installation without tenants pays nothing for it.
CREATE INDEX flow_work_tenant_idx ON flow_work (tenant_id, due_at) WHERE tenant_id <> '';

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
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_remove_archived(text, text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_wakes(text[], text[], text[]) TO %I',
                   runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION flowlog_slot_take(text, text, text, text, '
                   'timestamptz, integer) TO %I', runtime);
END;
$$;
