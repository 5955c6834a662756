#!/bin/sh
# First start only: the postgres image runs /docker-entrypoint-initdb.d/* on an empty data volume, after it
# created the business database POSTGRES_DB. Adds what the native stack's `init` adds: the Airflow and MLflow
# databases beside it and the business DDL of database/sql/init (mounted read-only at /kpidelivery/ddl),
# every file in name order in one transaction; then the passwords of the roles that DDL creates. The jobs
# re-apply the same idempotent DDL on every run, so later DDL changes reach an existing volume too.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE DATABASE "${POSTGRES_DB}_airflow";
CREATE DATABASE "${POSTGRES_DB}_mlflow";
SQL

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
