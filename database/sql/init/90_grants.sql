-- Privileges, least first. Idempotent (re-run after every DDL change so that new tables are covered;
-- default privileges cover tables the admin creates later).
-- The loader reads and writes rows (never TRUNCATE); it creates nothing (no CREATE on any schema, so no DDL) and owns only
-- its scratch table in staging (to ANALYZE it after each load). The analyst reads.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA raw, staging, prod, dqm FROM kpi_loader;
GRANT USAGE ON SCHEMA raw, staging, prod, dqm TO kpi_loader;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA raw, staging, prod, dqm TO kpi_loader;
REVOKE TRUNCATE ON ALL TABLES IN SCHEMA raw, staging, prod, dqm FROM kpi_loader;  -- an earlier release granted it
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA raw, staging, prod, dqm TO kpi_loader;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON dqm.init_ddl FROM kpi_loader;
DO $$  -- an older DDL (upgraded in place) may not have it yet; the next run of this file after it does
BEGIN
    IF to_regclass('staging.bt_crypto_events_candidate') IS NOT NULL THEN
        ALTER TABLE staging.bt_crypto_events_candidate OWNER TO kpi_loader;
    END IF;
END $$;
GRANT USAGE ON SCHEMA raw, staging, prod, dqm TO kpi_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA raw, staging, prod, dqm TO kpi_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA raw, staging, prod, dqm REVOKE TRUNCATE ON TABLES FROM kpi_loader;
ALTER DEFAULT PRIVILEGES IN SCHEMA raw, staging, prod, dqm
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO kpi_loader;
ALTER DEFAULT PRIVILEGES IN SCHEMA raw, staging, prod, dqm GRANT USAGE, SELECT ON SEQUENCES TO kpi_loader;
ALTER DEFAULT PRIVILEGES IN SCHEMA raw, staging, prod, dqm GRANT SELECT ON TABLES TO kpi_analyst;
