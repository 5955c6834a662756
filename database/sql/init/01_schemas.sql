-- The four schemas of the business database. Idempotent.
CREATE SCHEMA IF NOT EXISTS raw;      -- data as received (text), with ingestion metadata
CREATE SCHEMA IF NOT EXISTS staging;  -- typed candidates of the current run, before the merge
CREATE SCHEMA IF NOT EXISTS prod;     -- the served tables
CREATE SCHEMA IF NOT EXISTS dqm;      -- data-quality management: rejects and run records
