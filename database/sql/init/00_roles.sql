-- Roles shared by every database of the cluster. Idempotent.
-- kpi_loader: the jobs write with it; kpi_analyst: read-only access for pgAdmin users.
-- Passwords are not set here (the compose stack sets them from .env); trust/peer auth works locally.
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
