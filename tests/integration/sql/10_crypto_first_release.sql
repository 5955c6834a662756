-- The first release's crypto DDL, frozen: the upgrade test builds a database of that version from it.
-- Workflow 1: crypto events, validate-before-load. Idempotent.

-- Upstream extracts as received: every column text so that no input is lost at landing.
-- One extract per logical date holds the upstream window [D - window + 1, D] as upstream had it on D;
-- re-landing a date replaces its extract.
CREATE TABLE IF NOT EXISTS raw.bt_crypto_transaction_history (
    extract_date    DATE        NOT NULL,  -- logical date of the extract that delivered the row
    source_row      INTEGER     NOT NULL,  -- position of the row within its extract
    site_id         TEXT,
    user_id         TEXT,
    purchase_date   TEXT,
    crypto_type     TEXT,
    purchase_price  TEXT,
    purchase_units  TEXT,
    batch_id        TEXT        NOT NULL,
    source          TEXT        NOT NULL,
    ingested_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    row_hash        TEXT        NOT NULL,  -- sha256 of the six raw values
    PRIMARY KEY (extract_date, source_row)
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

-- Typed, rule-clean, de-duplicated candidates of the latest run of each logical date.
-- UNLOGGED: it is rebuilt by every run; the merge checks its row count against the run record.
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
    source_row      INTEGER        NOT NULL,
    row_hash        TEXT           NOT NULL
);
-- No primary key: it cost 2.4 s per million staged rows (docs/crypto_events.md). Keys are unique by
-- construction (duplicates are collapsed or rejected), and the merge's ON CONFLICT aborts the whole
-- transaction if a key ever came twice.
ALTER TABLE staging.bt_crypto_events_candidate DROP CONSTRAINT IF EXISTS bt_crypto_events_candidate_pkey;
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

-- Quarantine: every rejected row of the latest run of each logical date, with its reasons and raw text.
-- Keyed by (logical_date, source_row): a retry replaces, never duplicates.
CREATE TABLE IF NOT EXISTS dqm.bt_crypto_events_rejects (
    logical_date      DATE        NOT NULL,
    source_row        INTEGER     NOT NULL,
    run_id            UUID        NOT NULL,
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
    PRIMARY KEY (logical_date, source_row)
);
CREATE INDEX IF NOT EXISTS bt_crypto_events_rejects_run_idx ON dqm.bt_crypto_events_rejects (run_id);

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
    -- reconciliation is a constraint, not a hope
    CONSTRAINT dq_runs_reconciled CHECK (
        rows_read IS NULL OR rows_read = rows_valid + rows_rejected + duplicates_collapsed),
    CONSTRAINT dq_runs_merge_accounted CHECK (
        rows_inserted IS NULL
        OR rows_valid = rows_inserted + rows_updated + rows_reactivated + rows_unchanged)
);
CREATE INDEX IF NOT EXISTS dq_runs_logical_date_idx ON dqm.dq_runs (pipeline, logical_date);
