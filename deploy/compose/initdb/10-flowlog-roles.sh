#!/bin/sh
# Run by the postgres image on its first start (an empty data directory): flowlog's two roles
# and its database (README, "Two roles"; docs/eventstore.md, "Who can change the log"), the
# passwords from the container's environment, passed to psql as variables (never into the SQL
# by the shell). The owner owns the database and all that `flowlog migrate` creates in it; the
# runtime role gets its rights from that migrate (flowlog_grant_runtime), nothing here.
set -eu
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v owner_password="$FLOWLOG_OWNER_PASSWORD" -v runtime_password="$FLOWLOG_PASSWORD" <<'SQL'
CREATE ROLE flowlog_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE flowlog LOGIN PASSWORD :'runtime_password';
CREATE DATABASE flowlog OWNER flowlog_owner;
SQL
