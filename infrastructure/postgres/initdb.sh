#!/bin/sh
# First start only: the postgres image runs /docker-entrypoint-initdb.d/* on an empty data volume, after it
# created the business database POSTGRES_DB. Adds what the native stack's `init` adds: the business DDL of
# database/sql/init (mounted read-only at /kpidelivery/ddl, every file in name order in one transaction: it
# creates the roles kpi_loader and kpi_analyst), their passwords, and the Airflow and MLflow databases beside
# it, owned by kpi_loader (the services log in as the loader, never as the superuser). On every `make init`
# the airflow-init service re-applies the same idempotent DDL (`python -m jobs.common.postgres init`), so
# later DDL changes reach an existing volume too.
set -eu

set --
for ddl in /kpidelivery/ddl/*.sql; do
    set -- "$@" --file "$ddl"
done
psql -v ON_ERROR_STOP=1 --single-transaction --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" "$@"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v loader="$KPI_LOADER_PASSWORD" -v analyst="$KPI_ANALYST_PASSWORD" <<'SQL'
ALTER ROLE kpi_loader PASSWORD :'loader';
ALTER ROLE kpi_analyst PASSWORD :'analyst';
SQL

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE DATABASE "${POSTGRES_DB}_airflow" OWNER kpi_loader;
CREATE DATABASE "${POSTGRES_DB}_mlflow" OWNER kpi_loader;
SQL
