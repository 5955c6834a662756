-- The churn DDL as it was before ids were text, MAU counts, INVERSION a state and RECENCY_ML a date (for
-- the upgrade test: a database created by that version must upgrade in place). Idempotent.

-- One row per ingested file (a batch). The batch id is derived from (source, as-of date, file sha256),
-- so re-ingesting the same file replaces its rows instead of duplicating them.
CREATE TABLE IF NOT EXISTS dqm.churn_batches (
    batch_id        UUID        PRIMARY KEY,
    source          TEXT        NOT NULL CHECK (source IN
                        ('PAYMENTS', 'ACTIVE_USER', 'DEMOGRAFICOS', 'DINERO_CUENTA', 'MARKETPLACE_DATA')),
    as_of           DATE        NOT NULL,  -- the snapshot date the file describes (the logical date)
    file_path       TEXT        NOT NULL,
    file_sha256     TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('running', 'loaded', 'blocked', 'failed')),
    rows_read       BIGINT,
    rows_valid      BIGINT,
    rows_rejected   BIGINT,
    duplicates_collapsed BIGINT,
    rejects_by_rule JSONB,
    gate            JSONB,
    gx_results_uri  TEXT,
    gx_docs_uri     TEXT,
    message         TEXT,
    started_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ,
    CONSTRAINT churn_batches_reconciled CHECK (
        status <> 'loaded' OR rows_read = rows_valid + rows_rejected + duplicates_collapsed)
);
CREATE INDEX IF NOT EXISTS churn_batches_source_as_of ON dqm.churn_batches (source, as_of, finished_at);

-- Typed, rule-clean rows of loaded batches (column names: the task statement's, lower-cased).
CREATE TABLE IF NOT EXISTS raw.churn_payments (
    batch_id          UUID           NOT NULL,
    source_row        BIGINT         NOT NULL,
    fecha             DATE           NOT NULL,
    cus_cust_id_sel   BIGINT         NOT NULL,
    cus_cust_id_buy   BIGINT         NOT NULL,
    spent             NUMERIC(14, 2) NOT NULL,
    tpv_segment_detail TEXT          NOT NULL,
    descuento         NUMERIC(14, 2) NOT NULL,
    row_hash          TEXT           NOT NULL,
    PRIMARY KEY (batch_id, source_row)
);
CREATE TABLE IF NOT EXISTS raw.churn_active_user (
    batch_id          UUID    NOT NULL,
    source_row        BIGINT  NOT NULL,
    cus_cust_id_buy   BIGINT  NOT NULL,
    mau_mp_1          SMALLINT,
    mau_ml_1          SMALLINT,
    mau_ml_2          SMALLINT,
    last_login_mp_date_1 DATE,
    row_hash          TEXT    NOT NULL,
    PRIMARY KEY (batch_id, source_row)
);
CREATE TABLE IF NOT EXISTS raw.churn_demograficos (
    batch_id          UUID    NOT NULL,
    source_row        BIGINT  NOT NULL,
    cus_cust_id_buy   BIGINT  NOT NULL,
    age               SMALLINT,
    gender            TEXT,
    card_type         TEXT,
    city              TEXT,
    row_hash          TEXT    NOT NULL,
    PRIMARY KEY (batch_id, source_row)
);
CREATE TABLE IF NOT EXISTS raw.churn_dinero_cuenta (
    batch_id          UUID           NOT NULL,
    source_row        BIGINT         NOT NULL,
    cus_cust_id_buy   BIGINT         NOT NULL,
    plata_cuenta_1    NUMERIC(14, 2),
    plata_cuenta_2    NUMERIC(14, 2),
    inversion         SMALLINT,
    row_hash          TEXT           NOT NULL,
    PRIMARY KEY (batch_id, source_row)
);
CREATE TABLE IF NOT EXISTS raw.churn_marketplace_data (
    batch_id          UUID           NOT NULL,
    source_row        BIGINT         NOT NULL,
    cus_cust_id_buy   BIGINT         NOT NULL,
    spent_ml          NUMERIC(14, 2),
    recency_ml        INTEGER,
    frequency_ml      INTEGER,
    row_hash          TEXT           NOT NULL,
    PRIMARY KEY (batch_id, source_row)
);

-- Quarantine: every rejected row of every batch, with its rule codes, reason and raw values as received.
CREATE TABLE IF NOT EXISTS dqm.churn_rejects (
    batch_id     UUID        NOT NULL,
    source       TEXT        NOT NULL,
    source_row   BIGINT      NOT NULL,
    rule_codes   TEXT[]      NOT NULL,
    reason       TEXT        NOT NULL,
    raw_values   JSONB       NOT NULL,
    row_hash     TEXT        NOT NULL,
    PRIMARY KEY (batch_id, source_row)
);

-- Batch scores of the production model (one row per customer, snapshot and model version).
CREATE TABLE IF NOT EXISTS prod.churn_scores (
    customer_id    BIGINT           NOT NULL,
    snapshot_date  DATE             NOT NULL,
    probability    DOUBLE PRECISION NOT NULL CHECK (probability BETWEEN 0 AND 1),
    risk_band      TEXT             NOT NULL CHECK (risk_band IN ('low', 'medium', 'high')),
    model_name     TEXT             NOT NULL,
    model_version  INTEGER          NOT NULL,
    model_alias    TEXT,
    feature_version BIGINT          NOT NULL,  -- Delta version of the feature snapshot scored
    scored_at      TIMESTAMPTZ      NOT NULL,
    PRIMARY KEY (customer_id, snapshot_date, model_name, model_version)
);
