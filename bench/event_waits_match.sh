#!/usr/bin/env bash
# The lookup an incoming CloudEvent makes among the callback nodes waiting for events
# (sql/queries/waits.sql, waits_matching) over 100,000 waits, 10,000 of them of the event's
# tenant and type: EXPLAIN ANALYZE of it with the index on (tenant_id, event_type).
#
#   bench/event_waits_match.sh        (DATABASE_URL or local 5432)
#
# Creates a scratch database on the server, migrates it with `flowlog migrate`, fills
# event_waits, prints the plans (docs/sql.md quotes their times), drops the database.
set -euo pipefail
server=${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
flowlog=${FLOWLOG:-flowlog}
db="flowlog_waits_$$"
base=${server%%\?*}
psql -q "$server" -c "CREATE DATABASE $db"
trap 'psql -q "$server" -c "DROP DATABASE IF EXISTS $db"' EXIT
url="${base%/*}/$db"
DATABASE_URL="$url" "$flowlog" migrate >/dev/null
psql -q "$url" <<'SQL'
INSERT INTO event_waits
SELECT 'n' || i || '.1', 'n' || i,
       CASE WHEN i <= 10000 THEN 'acme' ELSE 't' || (i % 50) END,
       CASE WHEN i <= 10000 THEN 'backup.verified' ELSE 'type' || (i % 7) END,
       jsonb_build_object('clusterId', 'c-' || i), now()
FROM generate_series(1, 100000) i;
ANALYZE event_waits;
PREPARE matching(text, text, jsonb, integer, text) AS
    SELECT node_id, flow_id FROM event_waits
    WHERE tenant_id = $1 AND event_type = $2 AND $3::jsonb @> match AND node_id > $5
    ORDER BY node_id LIMIT $4;
EXPLAIN (ANALYZE, COSTS OFF)
    EXECUTE matching('acme', 'backup.verified', '{"clusterId": "c-5000", "size": 3}', 200, '');
EXPLAIN (ANALYZE, COSTS OFF)
    EXECUTE matching('t3', 'type1', '{"clusterId": "c-5000"}', 200, '');
SQL
