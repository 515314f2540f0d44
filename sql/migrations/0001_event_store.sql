-- The event store: one append-only log of every event of every stream, and the stored
-- checkpoints of its named subscriptions. Knows nothing of workflows.

CREATE TABLE events (
    -- Global identity of an event, taken from a sequence at insert time. It is unique and
    -- increases within a transaction, but transactions commit out of sequence order, so it
    -- is NOT the order in which readers may consume the log: see transaction_id.
    position       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The top-level id of the writing transaction. The log's total order is
    -- (transaction_id, position); a reader only reads below the xmin of its snapshot, where
    -- every transaction has ended, so no event can later appear before what it has read.
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    -- Byte order (COLLATE "C"): stream ids are identifiers, and prefix ranges such as every
    -- "flow-" stream must be an index range whatever the database's locale.
    stream_id      text        COLLATE "C" NOT NULL CHECK (stream_id <> ''),
    version        bigint      NOT NULL CHECK (version > 0),
    type           text        NOT NULL CHECK (type <> ''),
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at    timestamptz NOT NULL DEFAULT statement_timestamp(),
    -- Optimistic concurrency: two appends that expect the same version race for this key.
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

CREATE INDEX events_log_order_idx ON events (transaction_id, position);

-- The log is immutable. The database itself refuses changes, whoever the client is.
CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP
        USING ERRCODE = 'FL001', HINT = 'append a compensating event instead';
END;
$$;

CREATE TRIGGER events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- One row per named consumer of the log: how far it has processed, in log order. The row is
-- advanced in the same transaction as the consumer's own writes (exactly-once effects).
CREATE TABLE subscriptions (
    name           text        PRIMARY KEY CHECK (name <> ''),
    transaction_id xid8        NOT NULL DEFAULT '0',
    position       bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
