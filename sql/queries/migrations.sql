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

-- name: migrations_table
-- Whether the migrator's table exists yet (a runtime role reads it; it cannot create it).
SELECT to_regclass('schema_migrations') IS NOT NULL

-- name: session_role
-- The role a connection acts as, and whether it can change the event log: a superuser, or
-- a member of the role that owns the table (an owner can disable the log's triggers).
SELECT current_user AS role,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       OR (to_regclass('events') IS NOT NULL AND pg_has_role(
              current_user, (SELECT relowner FROM pg_class WHERE oid = to_regclass('events')),
              'MEMBER')) AS can_change_log

-- name: grant_runtime
-- What the runtime role $1 needs, and no more (sql/migrations/0006_runtime_role.sql).
SELECT flowlog_grant_runtime($1)
