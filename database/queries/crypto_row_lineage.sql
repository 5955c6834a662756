-- Crypto events: where each prod row came from. Every change a run made to a row (inserted, updated,
-- reactivated, deactivated), newest first, for every run (not only the last one, prod.last_run_id): the run
-- and its DAG run, what it read (the landing row of that run and its values, while the landing is kept:
-- CRYPTO_LANDING_RETENTION_DAYS; the row_hash names the upstream content after that), and the steward's
-- correction when one replaced upstream's values. To follow one row, add for instance
--   WHERE site_id = 'MLA' AND user_id = 1001 AND purchase_date = '2026-11-18' AND crypto_type = 'BTC'
SELECT g.site_id,
       g.user_id,
       g.purchase_date,
       g.crypto_type,
       g.action,
       g.changed_at,
       r.pipeline,
       r.logical_date AS run_of,
       r.dag_run_id,
       g.landing_row,
       g.row_hash,
       l.site_id AS landed_site_id,
       l.user_id AS landed_user_id,
       l.purchase_date AS landed_purchase_date,
       l.crypto_type AS landed_crypto_type,
       l.purchase_price AS landed_purchase_price,
       l.purchase_units AS landed_purchase_units,
       l.source_updated_at AS upstream_updated_at,
       g.correction_id,
       k.corrected_by,
       k.why AS corrected_because,
       (p.last_run_id = g.run_id) AS is_current_state,
       g.run_id::text AS run_id  -- as text: readable in pgAdmin and the app
FROM dqm.bt_crypto_events_lineage AS g
JOIN dqm.dq_runs AS r USING (run_id)
-- a replay read the snapshot of the run it replays
LEFT JOIN raw.bt_crypto_landing AS l
       ON l.run_id = CASE WHEN r.pipeline = 'crypto_events_replay' THEN r.reproduces_run_id ELSE g.run_id END
      AND l.landing_row = g.landing_row
LEFT JOIN dqm.bt_crypto_events_corrections AS k ON k.correction_id = g.correction_id
LEFT JOIN prod.bt_crypto_events AS p
       ON (p.site_id, p.user_id, p.purchase_date, p.crypto_type) = (g.site_id, g.user_id, g.purchase_date, g.crypto_type)
ORDER BY g.changed_at DESC, g.site_id, g.user_id, g.purchase_date, g.crypto_type;
