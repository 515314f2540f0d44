-- Named statements of the migrator (app/migrate.py).

-- name: lock
-- Held for the whole run, so that two processes starting at once migrate one after the other.
SELECT pg_advisory_lock(28829673625251687)  -- 'flowlog' as a big-endian integer

-- name: unlock
SELECT pg_advisory_unlock(28829673625251687)

-- name: create_table
-- The migrator's own bookkeeping, created before anything else.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: applied
SELECT version, name, checksum FROM schema_migrations ORDER BY version

-- name: record
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)
