-- Privileges: the loader writes everything, the analyst reads everything. Idempotent (re-run after
-- every DDL change so that new tables are covered; default privileges cover tables created later).
GRANT USAGE, CREATE ON SCHEMA raw, staging, prod, dqm TO kpi_loader;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA raw, staging, prod, dqm TO kpi_loader;
GRANT USAGE ON SCHEMA raw, staging, prod, dqm TO kpi_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA raw, staging, prod, dqm TO kpi_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA raw, staging, prod, dqm
    GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO kpi_loader;
ALTER DEFAULT PRIVILEGES IN SCHEMA raw, staging, prod, dqm GRANT SELECT ON TABLES TO kpi_analyst;
