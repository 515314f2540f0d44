-- Named statements of read routing (app/replicas/): positions in the primary's WAL, and how
-- far a streaming replica has replayed it. Positions travel as bigint byte offsets (an LSN
-- minus 0/0) so that comparing them is integer arithmetic on either side.

-- name: commit_position
-- Where the primary's WAL ends now: at or past the commit record of every transaction that
-- has returned, whichever session ran it (the insert position, so asynchronous commits that
-- are not yet flushed count too).
SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint

-- name: primary_identity
-- The cluster's identifier: a physical replica shares its primary's.
SELECT system_identifier FROM pg_control_system()

-- name: replica_status
-- Whether the server is a standby, how far it has replayed, and whose copy it is.
SELECT pg_is_in_recovery() AS standby,
       (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replayed,
       (SELECT system_identifier FROM pg_control_system()) AS system_identifier

-- name: replayed
SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint
