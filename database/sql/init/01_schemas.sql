-- The four schemas of the business database. Idempotent.
CREATE SCHEMA IF NOT EXISTS raw;      -- data as received (text), with ingestion metadata
CREATE SCHEMA IF NOT EXISTS staging;  -- typed candidates of the current run, before the merge
CREATE SCHEMA IF NOT EXISTS prod;     -- the served tables
CREATE SCHEMA IF NOT EXISTS dqm;      -- data-quality management: rejects and run records

-- Which init DDL this database has (sha256 of database/sql/init): jobs check it as the loader and refuse to
-- run on a database that `make init` has not created or upgraded.
CREATE TABLE IF NOT EXISTS dqm.init_ddl (
    id         smallint PRIMARY KEY CHECK (id = 1),
    digest     text        NOT NULL,
    files      text[]      NOT NULL,
    applied_at timestamptz NOT NULL
);
