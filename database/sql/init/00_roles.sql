-- Roles shared by every database of the cluster. Idempotent; applied by the admin (a superuser) at init.
-- kpi_loader: what the jobs and services log in as: reads and writes rows, no DDL, no roles, no databases.
-- kpi_analyst: reads only (pgAdmin users, the app): every transaction it starts is read-only.
-- Passwords are set by `jobs.common.postgres init` from KPI_LOADER_PASSWORD / KPI_ANALYST_PASSWORD (.env).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kpi_loader') THEN
        CREATE ROLE kpi_loader LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kpi_analyst') THEN
        CREATE ROLE kpi_analyst LOGIN;
    END IF;
END
$$;
-- also for roles an earlier release or an operator created with more
ALTER ROLE kpi_loader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;
ALTER ROLE kpi_analyst LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;
ALTER ROLE kpi_analyst SET default_transaction_read_only = on;
