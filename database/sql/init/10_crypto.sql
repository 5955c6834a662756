-- Workflow 1: crypto events, validate-before-load. Idempotent.

-- Upgrade of the first release, which landed per-date extracts (extract_date, source_row, ...) under the name of
-- the upstream table: they are kept, renamed, and the upstream table takes its own name back.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'raw'
               AND table_name = 'bt_crypto_transaction_history' AND column_name = 'extract_date') THEN
        ALTER TABLE raw.bt_crypto_transaction_history RENAME TO bt_crypto_extracts_v1;
        ALTER INDEX raw.bt_crypto_transaction_history_pkey RENAME TO bt_crypto_extracts_v1_pkey;
    END IF;
END $$;

-- THE source: upstream's history table as the task defines it, in its CURRENT state (upstream adds rows every day
-- and edits and deletes rows of recent days in place). Created here only when missing: the job reads any table
-- with the six columns of the task, typed or text (the original project's DDL has user_id BIGINT and NUMERIC
-- price and units), and uses inserted_at/updated_at only when they exist.
CREATE TABLE IF NOT EXISTS raw.bt_crypto_transaction_history (
    site_id         TEXT,
    user_id         TEXT,
    purchase_date   TEXT,  -- as upstream writes it: 1/2/2023 (day-first, unpadded), 2023-02-01, 20230201, ...
    crypto_type     TEXT,
    purchase_price  TEXT,
    purchase_units  TEXT,
    inserted_at     TIMESTAMPTZ DEFAULT now(),
    updated_at      TIMESTAMPTZ DEFAULT now()
);
-- How a run finds its window without parsing the whole history (docs/crypto_events.md): the distinct date texts
-- are walked on this index (a loose index scan: one probe per distinct text), parsed by the job, and the rows of
-- the texts that fall in the window are fetched through it. A plain index on upstream's own column: no change
-- of data, no function of ours in it.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'raw'
               AND table_name = 'bt_crypto_transaction_history' AND column_name = 'purchase_date') THEN
        CREATE INDEX IF NOT EXISTS bt_crypto_transaction_history_purchase_date_idx
            ON raw.bt_crypto_transaction_history (purchase_date);
    END IF;
END $$;

-- What each run read, as read: the window's rows and the not yet quarantined rows whose date no window can hold,
-- every value as text, with the row hash and upstream's timestamps. Keyed by run, so a run stays auditable and
-- reproducible (python -m jobs.crypto_events --reproduce RUN_ID) after upstream moved on; pruned by the job after
-- CRYPTO_LANDING_RETENTION_DAYS.
CREATE TABLE IF NOT EXISTS raw.bt_crypto_landing (
    run_id             UUID        NOT NULL,
    landing_row        INTEGER     NOT NULL,  -- position of the row in the run's snapshot, 1..n
    scope              TEXT        NOT NULL CHECK (scope IN ('window', 'unplaced')),
    site_id            TEXT,
    user_id            TEXT,
    purchase_date      TEXT,
    crypto_type        TEXT,
    purchase_price     TEXT,
    purchase_units     TEXT,
    row_hash           TEXT        NOT NULL,  -- sha256 of the six values as a JSON array (NULL and '' differ)
    source_inserted_at TIMESTAMPTZ,           -- upstream's inserted_at / updated_at, when its table has them
    source_updated_at  TIMESTAMPTZ,
    landed_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, landing_row)
);

-- The simulated upstream's own bookkeeping (jobs.crypto_events.generate; development only, the job never reads
-- it): which configuration plays upstream on the source table and up to which day it has been applied.
CREATE TABLE IF NOT EXISTS raw.crypto_upstream_simulator (
    name            TEXT        PRIMARY KEY,  -- the table played on
    config          JSONB       NOT NULL,
    first_day       DATE        NOT NULL,
    applied_through DATE        NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Reference price per crypto and day (upstream market feed), used by the plausibility rule.
CREATE TABLE IF NOT EXISTS raw.crypto_reference_prices (
    price_date      DATE           NOT NULL,
    crypto_type     TEXT           NOT NULL,
    reference_price NUMERIC(20, 8) NOT NULL CHECK (reference_price > 0),
    source          TEXT           NOT NULL,
    ingested_at     TIMESTAMPTZ    NOT NULL DEFAULT now(),
    PRIMARY KEY (price_date, crypto_type)
);

-- Typed, rule-clean, de-duplicated candidates of the latest run of each logical date (landing_row: the row of
-- the run's landing snapshot it came from). UNLOGGED: rebuilt by every run; the merge checks its row count
-- against the run record.
CREATE UNLOGGED TABLE IF NOT EXISTS staging.bt_crypto_events_candidate (
    logical_date    DATE           NOT NULL,
    run_id          UUID           NOT NULL,
    site_id         TEXT           NOT NULL,
    user_id         BIGINT         NOT NULL,
    purchase_date   DATE           NOT NULL,
    crypto_type     TEXT           NOT NULL,
    purchase_price  NUMERIC(20, 8) NOT NULL,
    purchase_units  NUMERIC(24, 10) NOT NULL,
    purchase_value  NUMERIC(24, 8) NOT NULL,
    landing_row     INTEGER        NOT NULL,
    row_hash        TEXT           NOT NULL
);
-- No primary key: it cost 2.4 s per million staged rows (docs/crypto_events.md). Keys are unique by
-- construction (duplicates are collapsed or rejected), and the merge's ON CONFLICT aborts the whole
-- transaction if a key ever came twice.
ALTER TABLE staging.bt_crypto_events_candidate DROP CONSTRAINT IF EXISTS bt_crypto_events_candidate_pkey;
DO $$
BEGIN  -- upgrade: the first release numbered rows within a per-date extract
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'staging'
               AND table_name = 'bt_crypto_events_candidate' AND column_name = 'source_row') THEN
        ALTER TABLE staging.bt_crypto_events_candidate RENAME COLUMN source_row TO landing_row;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS bt_crypto_events_candidate_run_idx
    ON staging.bt_crypto_events_candidate (logical_date, run_id);

CREATE TABLE IF NOT EXISTS prod.bt_crypto_events (
    site_id         TEXT           NOT NULL,
    user_id         BIGINT         NOT NULL,
    purchase_date   DATE           NOT NULL,
    crypto_type     TEXT           NOT NULL,
    purchase_price  NUMERIC(20, 8) NOT NULL,
    purchase_units  NUMERIC(24, 10) NOT NULL,
    purchase_value  NUMERIC(24, 8) NOT NULL,
    is_active       BOOLEAN        NOT NULL DEFAULT TRUE,
    created_at      TIMESTAMPTZ    NOT NULL,
    updated_at      TIMESTAMPTZ    NOT NULL,
    deactivated_at  TIMESTAMPTZ,
    last_run_id     UUID           NOT NULL,  -- the run that last changed the row
    PRIMARY KEY (site_id, user_id, purchase_date, crypto_type),
    CHECK (purchase_price > 0 AND purchase_units > 0),
    CHECK (is_active = (deactivated_at IS NULL))
);
CREATE INDEX IF NOT EXISTS bt_crypto_events_purchase_date_idx ON prod.bt_crypto_events (purchase_date);

-- Quarantine: every rejected row of every run, with its reasons and raw text, keyed by the run and its landing
-- row: a retry of a step replaces the run's rows, never duplicates them, and no run touches another's rows.
-- scope 'unplaced': a row whose date no window can hold, quarantined once (by the first merged run that saw it).
CREATE TABLE IF NOT EXISTS dqm.bt_crypto_events_rejects (
    logical_date      DATE        NOT NULL,
    landing_row       INTEGER     NOT NULL,
    run_id            UUID        NOT NULL,
    scope             TEXT        NOT NULL DEFAULT 'window' CHECK (scope IN ('window', 'unplaced')),
    rule_codes        TEXT[]      NOT NULL CHECK (cardinality(rule_codes) > 0),
    reason            TEXT        NOT NULL,
    raw_site_id       TEXT,
    raw_user_id       TEXT,
    raw_purchase_date TEXT,
    raw_crypto_type   TEXT,
    raw_purchase_price TEXT,
    raw_purchase_units TEXT,
    row_hash          TEXT        NOT NULL,
    -- the natural key when it parses, so that the merge can hold keys whose rows were all rejected
    key_site_id       TEXT,
    key_user_id       BIGINT,
    key_purchase_date DATE,
    key_crypto_type   TEXT,
    rejected_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, landing_row)
);
DO $$
BEGIN  -- upgrade of the first release: keyed by (logical_date, source_row), the latest run of each date only
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'dqm'
               AND table_name = 'bt_crypto_events_rejects' AND column_name = 'source_row') THEN
        ALTER TABLE dqm.bt_crypto_events_rejects RENAME COLUMN source_row TO landing_row;
        ALTER TABLE dqm.bt_crypto_events_rejects
            ADD COLUMN scope TEXT NOT NULL DEFAULT 'window' CHECK (scope IN ('window', 'unplaced'));
        ALTER TABLE dqm.bt_crypto_events_rejects DROP CONSTRAINT bt_crypto_events_rejects_pkey;
        ALTER TABLE dqm.bt_crypto_events_rejects ADD PRIMARY KEY (run_id, landing_row);
    END IF;
END $$;
DROP INDEX IF EXISTS dqm.bt_crypto_events_rejects_run_idx;  -- the primary key leads with run_id
CREATE INDEX IF NOT EXISTS bt_crypto_events_rejects_date_idx ON dqm.bt_crypto_events_rejects (logical_date);
CREATE INDEX IF NOT EXISTS bt_crypto_events_rejects_unplaced_idx
    ON dqm.bt_crypto_events_rejects (row_hash) WHERE scope = 'unplaced';

CREATE TABLE IF NOT EXISTS dqm.dq_runs (
    run_id               UUID        PRIMARY KEY,
    pipeline             TEXT        NOT NULL,
    dag_run_id           TEXT,
    logical_date         DATE        NOT NULL,
    window_start         DATE        NOT NULL,
    window_end           DATE        NOT NULL,
    status               TEXT        NOT NULL CHECK (status IN ('running', 'validated', 'merged', 'blocked', 'failed')),
    started_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at          TIMESTAMPTZ,
    rows_read            BIGINT,
    rows_valid           BIGINT,
    rows_rejected        BIGINT,
    duplicates_collapsed BIGINT,
    rows_inserted        BIGINT,
    rows_updated         BIGINT,
    rows_deactivated     BIGINT,
    rows_reactivated     BIGINT,
    keys_held            BIGINT,
    rows_unchanged       BIGINT,
    rejects_by_rule      JSONB,
    gate_passed          BOOLEAN,
    gate_summary         JSONB,
    gx_results_uri       TEXT,
    gx_docs_uri          TEXT,
    message              TEXT,
    source               TEXT,        -- what the run read: the upstream table, or the landing of the run it reproduces
    reproduces_run_id    UUID,
    rows_unplaced        BIGINT,      -- of rows_read: rows whose date no window can hold (all rejected)
    earliest_date        DATE,        -- purchase dates before this or after latest_date fit no window
    latest_date          DATE,
    -- reconciliation is a constraint, not a hope
    CONSTRAINT dq_runs_reconciled CHECK (
        rows_read IS NULL OR rows_read = rows_valid + rows_rejected + duplicates_collapsed),
    CONSTRAINT dq_runs_merge_accounted CHECK (
        rows_inserted IS NULL
        OR rows_valid = rows_inserted + rows_updated + rows_reactivated + rows_unchanged)
);
ALTER TABLE dqm.dq_runs ADD COLUMN IF NOT EXISTS source TEXT;
ALTER TABLE dqm.dq_runs ADD COLUMN IF NOT EXISTS reproduces_run_id UUID;
ALTER TABLE dqm.dq_runs ADD COLUMN IF NOT EXISTS rows_unplaced BIGINT;
ALTER TABLE dqm.dq_runs ADD COLUMN IF NOT EXISTS earliest_date DATE;
ALTER TABLE dqm.dq_runs ADD COLUMN IF NOT EXISTS latest_date DATE;
CREATE INDEX IF NOT EXISTS dq_runs_logical_date_idx ON dqm.dq_runs (pipeline, logical_date);

-- Executors write, the driver publishes (jobs/common/stage.py): each Spark partition COPYs its rows into an
-- UNLOGGED staging table tagged with the run and its partition number (`part`: a retried partition replaces
-- its own rows), then one transaction on the driver moves them into their table. The candidates are such a
-- stage already (the merge is their publication); the quarantine has its own.
ALTER TABLE staging.bt_crypto_events_candidate ADD COLUMN IF NOT EXISTS part INTEGER;
CREATE UNLOGGED TABLE IF NOT EXISTS staging.bt_crypto_events_rejects (LIKE dqm.bt_crypto_events_rejects INCLUDING DEFAULTS);
ALTER TABLE staging.bt_crypto_events_rejects ADD COLUMN IF NOT EXISTS part INTEGER NOT NULL;
CREATE INDEX IF NOT EXISTS bt_crypto_events_rejects_stage_idx ON staging.bt_crypto_events_rejects (run_id, part);

-- Stewards' corrections of quarantined rows (jobs/crypto_events/corrections.py, replay.py; docs/crypto_events.md),
-- with who and why. Append-only (the audit trail): a row's content is named by its row_hash, and the latest
-- correction of a hash is what every later run reads in place of upstream's values (the landing keeps what upstream
-- wrote), placed by its corrected date and judged by the same rules. The run that last judged it records how.
CREATE TABLE IF NOT EXISTS dqm.bt_crypto_events_corrections (
    correction_id   BIGSERIAL   PRIMARY KEY,
    row_hash        TEXT        NOT NULL,  -- the upstream row it corrects (raw.bt_crypto_landing.row_hash)
    logical_date    DATE        NOT NULL,  -- the quarantine row it was made from
    run_id          UUID        NOT NULL,
    landing_row     INTEGER     NOT NULL,
    original_purchase_date TEXT,           -- upstream's date text of that row: where runs find it
    site_id         TEXT,                  -- the six values as the steward corrected them (text, as upstream's)
    user_id         TEXT,
    purchase_date   TEXT,
    crypto_type     TEXT,
    purchase_price  TEXT,
    purchase_units  TEXT,
    corrected_by    TEXT        NOT NULL CHECK (btrim(corrected_by) <> ''),
    why             TEXT        NOT NULL CHECK (btrim(why) <> ''),
    corrected_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    judged_by_run_id UUID,                 -- the last merged run that applied it, and how it judged it
    outcome         TEXT CHECK (outcome IN
                        ('inserted', 'updated', 'reactivated', 'unchanged', 'collapsed', 'rejected', 'absent')),
    outcome_reason  TEXT,                  -- the rules it still breaks (rejected), or why it was not found (absent)
    judged_at       TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS bt_crypto_events_corrections_hash_idx
    ON dqm.bt_crypto_events_corrections (row_hash, correction_id);
CREATE INDEX IF NOT EXISTS bt_crypto_events_corrections_date_idx ON dqm.bt_crypto_events_corrections (logical_date);

-- Which correction's values a quarantined or staged row carries (NULL: upstream's own).
ALTER TABLE dqm.bt_crypto_events_rejects ADD COLUMN IF NOT EXISTS correction_id BIGINT;
ALTER TABLE staging.bt_crypto_events_rejects ADD COLUMN IF NOT EXISTS correction_id BIGINT;
ALTER TABLE staging.bt_crypto_events_candidate ADD COLUMN IF NOT EXISTS correction_id BIGINT;

-- Lineage: every change a merge made to a prod row, for every run (prod.last_run_id names only the latest): the
-- run, what it did, and the landing row of that run the values came from (row_hash names the upstream content
-- even after the landing is pruned), with the correction applied, if any. Written in the merge's transaction.
CREATE TABLE IF NOT EXISTS dqm.bt_crypto_events_lineage (
    site_id         TEXT        NOT NULL,
    user_id         BIGINT      NOT NULL,
    purchase_date   DATE        NOT NULL,
    crypto_type     TEXT        NOT NULL,
    run_id          UUID        NOT NULL,
    action          TEXT        NOT NULL CHECK (action IN ('inserted', 'updated', 'reactivated', 'deactivated')),
    landing_row     INTEGER,               -- NULL when deactivated: no source row is left
    row_hash        TEXT,
    correction_id   BIGINT,
    changed_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, user_id, purchase_date, crypto_type, run_id),
    CHECK ((action = 'deactivated') = (landing_row IS NULL))
);
CREATE INDEX IF NOT EXISTS bt_crypto_events_lineage_run_idx ON dqm.bt_crypto_events_lineage (run_id);

-- Runs: the corrections a run applied (those with an id up to corrections_upto: what reproduces its reading),
-- how many read rows carried one, and whether a steward's replay started it.
ALTER TABLE dqm.dq_runs ADD COLUMN IF NOT EXISTS corrections_upto BIGINT;
ALTER TABLE dqm.dq_runs ADD COLUMN IF NOT EXISTS rows_corrected BIGINT;
ALTER TABLE dqm.dq_runs ADD COLUMN IF NOT EXISTS is_replay BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE dqm.dq_runs DROP CONSTRAINT IF EXISTS dq_runs_corrected_within_read;
ALTER TABLE dqm.dq_runs ADD CONSTRAINT dq_runs_corrected_within_read CHECK (rows_corrected <= rows_read);
