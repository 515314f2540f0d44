-- Named statements of idempotency keys (app/workflow/idempotency.py, migration 0005).

-- name: claim
-- The keys of the requests whose effects the batch's appends are (parallel arrays), inside
-- the appends' own statement: written only for streams it appended to, and a key already
-- taken (by a concurrent request with the same key) fails the whole statement: no second
-- effect (the batch's other appends are then sent again alone).
INSERT INTO idempotency_keys (tenant_id, key, request, stream_id, version, expires_at)
SELECT r.tenant_id, r.key, r.request, r.stream_id, r.version,
       now() + make_interval(secs => r.ttl)
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::float8[])
     AS r(tenant_id, key, request, stream_id, version, ttl)
WHERE r.stream_id IN (SELECT stream_id FROM appended)

-- name: record
-- What a request that changed nothing answered: the state it saw ($4, $5), a refusal ($6,
-- $7) or a whole answer ($8). A concurrent request with the same key may have been first:
-- then nothing is written, and the caller answers what that one recorded.
INSERT INTO idempotency_keys (tenant_id, key, request, stream_id, version, code, message,
                              answer, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
ON CONFLICT (tenant_id, key) DO NOTHING
RETURNING key

-- name: find
-- The key's row, if it has not expired; an expired one is removed on the way, so that the key
-- can be used again at once.
WITH forgotten AS (
    DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND expires_at <= now()
)
SELECT request, stream_id, version, code, message, answer
FROM idempotency_keys
WHERE tenant_id = $1 AND key = $2 AND expires_at > now()

-- name: sweep
-- Up to $1 expired keys, skipping rows another sweeper (or a request reusing its key) holds:
-- appends never wait on the sweep.
DELETE FROM idempotency_keys
WHERE (tenant_id, key) IN (
    SELECT tenant_id, key FROM idempotency_keys
    WHERE expires_at <= now()
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)

-- name: claim_one
-- The key of the request whose effect one stream's append is (AppendAlso), inside the
-- append's own statement: written only when the append wrote; a key already taken fails the
-- append (nothing written).
INSERT INTO idempotency_keys (tenant_id, key, request, stream_id, version, expires_at)
SELECT $1::text, $2::text, $3::text, $4::text, $5::bigint,
       now() + make_interval(secs => $6::float8)
WHERE EXISTS (SELECT 1 FROM appended)
