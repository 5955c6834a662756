-- Workflow 2: churn. Idempotent: applied on every start. Creates the tables, then upgrades a database
-- created by an earlier version in place (see the end of the file): no row is lost.

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
-- Ids are opaque text (SELLER_1 is a valid seller id), as the task statement's files have them.
CREATE TABLE IF NOT EXISTS raw.churn_payments (
    batch_id          UUID           NOT NULL,
    source_row        BIGINT         NOT NULL,
    fecha             DATE           NOT NULL,
    cus_cust_id_sel   TEXT           NOT NULL,
    cus_cust_id_buy   TEXT           NOT NULL,
    spent             NUMERIC(14, 2) NOT NULL,
    tpv_segment_detail TEXT          NOT NULL,
    descuento         NUMERIC(14, 2) NOT NULL,
    row_hash          TEXT           NOT NULL,
    PRIMARY KEY (batch_id, source_row)
);
CREATE TABLE IF NOT EXISTS raw.churn_active_user (
    batch_id          UUID    NOT NULL,
    source_row        BIGINT  NOT NULL,
    cus_cust_id_buy   TEXT    NOT NULL,
    mau_mp_1          INTEGER,  -- accesses to the Mercado Pago app in the last month (a count)
    mau_ml_1          INTEGER,  -- accesses to the Mercado Libre app, last month
    mau_ml_2          INTEGER,  -- ... and the month before
    last_login_mp_date_1 DATE,
    row_hash          TEXT    NOT NULL,
    PRIMARY KEY (batch_id, source_row)
);
CREATE TABLE IF NOT EXISTS raw.churn_demograficos (
    batch_id          UUID    NOT NULL,
    source_row        BIGINT  NOT NULL,
    cus_cust_id_buy   TEXT    NOT NULL,
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
    cus_cust_id_buy   TEXT           NOT NULL,
    plata_cuenta_1    NUMERIC(14, 2),
    plata_cuenta_2    NUMERIC(14, 2),
    inversion         TEXT,  -- investment state: Investing, Elegible, Warmup or Pending
    row_hash          TEXT           NOT NULL,
    PRIMARY KEY (batch_id, source_row)
);
CREATE TABLE IF NOT EXISTS raw.churn_marketplace_data (
    batch_id          UUID           NOT NULL,
    source_row        BIGINT         NOT NULL,
    cus_cust_id_buy   TEXT           NOT NULL,
    spent_ml          NUMERIC(14, 2),
    recency_ml        DATE,  -- the date of the last marketplace purchase
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
    customer_id    TEXT             NOT NULL,
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

-- Upgrade of a database created before ids were text, MAU counts and INVERSION a state (each step runs only
-- when the column still has its old type; existing rows are converted, none is dropped):
-- - ids BIGINT -> TEXT (the same digits), prod.churn_scores.customer_id too;
-- - MAU_* SMALLINT -> INTEGER (counts);
-- - INVERSION SMALLINT -> TEXT: old 0/1 values stay '0'/'1' (no state is invented for them);
-- - RECENCY_ML INTEGER days -> DATE: the batch's as_of minus those days (what the number meant).
DO $$
DECLARE
    col RECORD;
BEGIN
    FOR col IN
        SELECT c.table_schema, c.table_name, c.column_name, c.data_type
        FROM information_schema.columns c
        WHERE (c.table_schema, c.table_name, c.column_name) IN (
                ('raw', 'churn_payments', 'cus_cust_id_sel'), ('raw', 'churn_payments', 'cus_cust_id_buy'),
                ('raw', 'churn_active_user', 'cus_cust_id_buy'), ('raw', 'churn_demograficos', 'cus_cust_id_buy'),
                ('raw', 'churn_dinero_cuenta', 'cus_cust_id_buy'), ('raw', 'churn_marketplace_data', 'cus_cust_id_buy'),
                ('raw', 'churn_dinero_cuenta', 'inversion'), ('prod', 'churn_scores', 'customer_id'))
          AND c.data_type IN ('bigint', 'integer', 'smallint')
    LOOP
        EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN %I TYPE TEXT USING %I::text',
                       col.table_schema, col.table_name, col.column_name, col.column_name);
        RAISE NOTICE 'upgraded %.%.% from % to text', col.table_schema, col.table_name, col.column_name, col.data_type;
    END LOOP;
    FOR col IN
        SELECT c.column_name
        FROM information_schema.columns c
        WHERE c.table_schema = 'raw' AND c.table_name = 'churn_active_user'
          AND c.column_name IN ('mau_mp_1', 'mau_ml_1', 'mau_ml_2') AND c.data_type = 'smallint'
    LOOP
        EXECUTE format('ALTER TABLE raw.churn_active_user ALTER COLUMN %I TYPE INTEGER', col.column_name);
    END LOOP;
    IF EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = 'raw' AND table_name = 'churn_marketplace_data' AND column_name = 'recency_ml'
          AND data_type = 'integer'
    ) THEN
        ALTER TABLE raw.churn_marketplace_data ADD COLUMN recency_ml_date DATE;
        UPDATE raw.churn_marketplace_data m
        SET recency_ml_date = b.as_of - m.recency_ml
        FROM dqm.churn_batches b
        WHERE b.batch_id = m.batch_id AND m.recency_ml IS NOT NULL;
        ALTER TABLE raw.churn_marketplace_data DROP COLUMN recency_ml;
        ALTER TABLE raw.churn_marketplace_data RENAME COLUMN recency_ml_date TO recency_ml;
        RAISE NOTICE 'upgraded raw.churn_marketplace_data.recency_ml from days to the date of the purchase';
    END IF;
END
$$;

-- Executors write, the driver publishes (jobs/common/stage.py): each Spark partition COPYs its rows into an
-- UNLOGGED staging table of the same shape, tagged with the batch (or scoring load) and its partition number
-- (`part`: a retried partition replaces its own rows); one transaction on the driver then moves a batch's
-- rows into raw (with the batch record) or a load's scores into prod.
DO $$
DECLARE
    target TEXT;
BEGIN
    FOREACH target IN ARRAY ARRAY['raw.churn_payments', 'raw.churn_active_user', 'raw.churn_demograficos',
                                  'raw.churn_dinero_cuenta', 'raw.churn_marketplace_data', 'dqm.churn_rejects']
    LOOP
        EXECUTE format('CREATE UNLOGGED TABLE IF NOT EXISTS staging.%s (LIKE %s INCLUDING DEFAULTS)',
                       split_part(target, '.', 2), target);
        EXECUTE format('ALTER TABLE staging.%s ADD COLUMN IF NOT EXISTS part INTEGER NOT NULL',
                       split_part(target, '.', 2));
        EXECUTE format('CREATE INDEX IF NOT EXISTS %s_stage_idx ON staging.%s (batch_id, part)',
                       split_part(target, '.', 2), split_part(target, '.', 2));
    END LOOP;
END $$;
CREATE UNLOGGED TABLE IF NOT EXISTS staging.churn_scores (LIKE prod.churn_scores INCLUDING DEFAULTS);
ALTER TABLE staging.churn_scores ADD COLUMN IF NOT EXISTS load_id UUID NOT NULL;
ALTER TABLE staging.churn_scores ADD COLUMN IF NOT EXISTS part INTEGER NOT NULL;
CREATE INDEX IF NOT EXISTS churn_scores_stage_idx ON staging.churn_scores (load_id, part);
