-- Named statements of access (app/access/): the api_keys projection, and what reads it.

-- name: key_created
-- A key's row, in its KeyCreated append's own statement (it acts only when the append did; a
-- name already taken in the tenant fails the whole statement: no event, no row).
INSERT INTO api_keys (id, tenant_id, name, role, prefix, digest, created_at, created_by,
                      expires_at, stream_version)
SELECT $1, $2, $3, $4, $5, $6, a.recorded_at, $7, $8, a.version
FROM appended AS a
LIMIT 1

-- name: key_revoked
-- A key's revocation, in its KeyRevoked append's own statement.
UPDATE api_keys
SET revoked_at = a.recorded_at, revoked_by = $2, revoke_reason = $3, stream_version = a.version
FROM appended AS a
WHERE api_keys.id = $1

-- name: keys
-- Every key (revoked and expired ones too): each process holds them in memory.
SELECT id, tenant_id, name, role, prefix, digest, created_at, created_by, expires_at,
       revoked_at, revoked_by, revoke_reason, last_used_at
FROM api_keys

-- name: key_by_digest
-- A key this process has not heard of (made by another process a moment ago, its
-- notification still on the way): looked for by its digest (unique) before it is refused.
SELECT id, tenant_id, name, role, prefix, digest, created_at, created_by, expires_at,
       revoked_at, revoked_by, revoke_reason, last_used_at
FROM api_keys WHERE digest = $1

-- name: key
SELECT id, tenant_id, name, role, prefix, digest, created_at, created_by, expires_at,
       revoked_at, revoked_by, revoke_reason, last_used_at, stream_version
FROM api_keys WHERE id = $1

-- name: listed
-- The keys of tenant $1 (NULL: every tenant), newest first, after cursor ($2 created_at,
-- $3 id) when given; $4 rows; $5 a status (active, expired, revoked) or NULL for all.
SELECT id, tenant_id, name, role, prefix, digest, created_at, created_by, expires_at,
       revoked_at, revoked_by, revoke_reason, last_used_at
FROM api_keys
WHERE ($1::text IS NULL OR tenant_id = $1)
  AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::text))
  AND ($5::text IS NULL OR $5 = CASE WHEN revoked_at IS NOT NULL THEN 'revoked'
                                     WHEN expires_at <= now() THEN 'expired'
                                     ELSE 'active' END)
ORDER BY created_at DESC, id DESC
LIMIT $4

-- name: used
-- When keys were last used ($1 ids, $2 times): never moved back.
UPDATE api_keys AS k SET last_used_at = u.at
FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)

-- name: notify
-- Every process reloads its keys (app/access/ring.py).
SELECT pg_notify('flowlog_access', $1)

-- name: restore
-- A key's row from its stream's fold (flowlog rebuild, import).
INSERT INTO api_keys (id, tenant_id, name, role, prefix, digest, created_at, created_by,
                      expires_at, revoked_at, revoked_by, revoke_reason, stream_version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (id) DO UPDATE
SET revoked_at = EXCLUDED.revoked_at, revoked_by = EXCLUDED.revoked_by,
    revoke_reason = EXCLUDED.revoke_reason, stream_version = EXCLUDED.stream_version

-- name: secret
-- The installation's secret (migration 0007): console sessions are signed with a key derived
-- from it, and keys made from an Idempotency-Key are derived from it.
SELECT secret FROM callback_secret

-- name: key_rows
-- Every key's row as its stream's fold makes it (flowlog verify): all but last_used_at.
SELECT id, tenant_id, name, role, prefix, digest, created_at, created_by, expires_at,
       revoked_at, revoked_by, revoke_reason, stream_version
FROM api_keys
