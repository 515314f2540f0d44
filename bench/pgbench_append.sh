#!/usr/bin/env bash
# The append statement against a plain single-row INSERT, driven by pgbench (a C client), so
# that the figures show the server's cost without Python's. Complements `flowlog bench append`.
#
#   bench/pgbench_append.sh [SECONDS]       (default 10 s per run; DATABASE_URL or local 5432)
#
# Creates a scratch database on the server, migrates it with `flowlog migrate`, runs plain and
# ours alternately for 1, 4 and 16 clients, prints tps and the ratio, drops the database.
set -euo pipefail
seconds=${1:-10}
server=${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
here=$(cd "$(dirname "$0")" && pwd)
pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n 1)
[ -x "$pgbench" ] || { echo "pgbench not found (Debian: postgresql-contrib / postgresql-client)" >&2; exit 2; }
flowlog=${FLOWLOG:-flowlog}

db="flowlog_pgbench_$$"
base=${server%%\?*}
query=""
[ "$base" != "$server" ] && query="?${server#*\?}"
url="${base%/*}/${db}${query}"

psql "$server" -qAtc "CREATE DATABASE $db"
trap 'psql "$server" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
DATABASE_URL="$url" FLOWLOG_LOG_LEVEL=WARNING "$flowlog" migrate
psql "$url" -qAtc "$(sed -n '/-- name: create_plain_table/,/^$/p' "$here/../sql/queries/bench.sql" | grep -v '^--')"

work=$(mktemp -d)
trap 'rm -rf "$work"; psql "$server" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
data='{"node": "backup", "attempt": 1, "result": "done"}'
meta='{"actor": "bench"}'
# Each client appends to its own streams, 20 events each (as `flowlog bench append` does), so
# the append's head lookup finds a head; :run keeps the streams of each pgbench run apart.
stream="'s-' || :run || '-' || :client_id || '-' || (:k / 20)"
cat > "$work/plain.sql" <<SQL
\set k :k + 1
INSERT INTO bench_plain (stream_id, version, type, data, metadata)
VALUES ($stream, :k % 20 + 1, 'NodeSucceeded', '$data', '$meta');
SQL
# The single-event append (append_one_with, completed as the store does), with pgbench
# variables for its parameters.
cat > "$work/ours.sql" <<SQL
\set k :k + 1
INSERT INTO events (stream_id, version, type, data, metadata)
SELECT $stream, coalesce(last.version, 0) + 1, 'NodeSucceeded', '$data', '$meta'
FROM (SELECT) AS one
LEFT JOIN LATERAL (
    SELECT version, transaction_id FROM events WHERE stream_id = $stream
    ORDER BY version DESC LIMIT 1
) AS last ON true
WHERE coalesce(last.version, 0) = :k % 20
  AND (last.transaction_id IS NULL OR last.transaction_id <= (SELECT pg_current_xact_id()))
RETURNING position, transaction_id, version, recorded_at;
SQL

# tps CLIENTS SCRIPT RUN: RUN names the run's streams (each run starts new streams).
tps() { "$pgbench" -n -M prepared -c "$1" -j 2 -T "$seconds" -D k=-1 -D run="$3" \
          -f "$work/$2.sql" "$url" 2>/dev/null | awk '/^tps/ {print int($3)}'; }
printf '%8s %12s %12s %7s\n' clients plain_tps ours_tps ratio
for clients in 1 4 16; do
  p1=$(tps "$clients" plain "${clients}1"); o1=$(tps "$clients" ours "${clients}1")
  o2=$(tps "$clients" ours "${clients}2"); p2=$(tps "$clients" plain "${clients}2")
  plain=$(( (p1 + p2) / 2 )); ours=$(( (o1 + o2) / 2 ))
  printf '%8s %12s %12s %7s\n' "$clients" "$plain" "$ours" \
    "$(awk -v o="$ours" -v p="$plain" 'BEGIN {printf "%.2f", o / p}')"
done
