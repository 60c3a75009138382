#!/bin/sh
# Creates nightbatch's two databases on first start of the postgres container (docker-entrypoint-initdb.d runs
# this once, on an empty data volume): `nightbatch` (the app's queue, batches and ledger) and `prefect`
# (Prefect server's own state), each owned by its own login role and closed to every other role.
# Passwords come from the environment (.env), never from this file.
set -e

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  --set app_password="${NIGHTBATCH_DB_PASSWORD:?set NIGHTBATCH_DB_PASSWORD in .env}" \
  --set prefect_password="${PREFECT_DB_PASSWORD:?set PREFECT_DB_PASSWORD in .env}" <<'SQL'
CREATE ROLE nightbatch LOGIN PASSWORD :'app_password';
CREATE DATABASE nightbatch OWNER nightbatch;
REVOKE ALL ON DATABASE nightbatch FROM PUBLIC;

CREATE ROLE prefect LOGIN PASSWORD :'prefect_password';
CREATE DATABASE prefect OWNER prefect;
REVOKE ALL ON DATABASE prefect FROM PUBLIC;
SQL
