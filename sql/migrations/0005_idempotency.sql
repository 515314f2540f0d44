-- Idempotency keys: a request that names a key (the Idempotency-Key header, or the service's
-- idempotency argument) has one effect however often it is sent. A key's row is written in
-- the same statement as the effect (the append's AppendAlso), so no crash can separate them;
-- a request that changed nothing records what it answered instead. Rows expire (24 h by
-- default) and are swept in small batches.
CREATE TABLE idempotency_keys (
    tenant_id   text        NOT NULL,
    key         text        NOT NULL,
    -- What was asked (a hash of the operation and its arguments): the same key with another
    -- request is refused.
    request     text        NOT NULL,
    -- The effect, or the state answered: the stream and its version then. The answer is
    -- folded again from the log up to that version.
    stream_id   text,
    version     bigint,
    -- A refusal (the service's code and message), answered again as it was.
    code        integer,
    message     text,
    -- An answer kept whole (a bulk action's, one line per flow).
    answer      jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key),
    CHECK ((stream_id IS NULL) = (version IS NULL)),
    CHECK ((code IS NULL) = (message IS NULL))
);

CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
