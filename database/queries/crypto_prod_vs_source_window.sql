-- Crypto events: prod compared key by key with the source window of the latest merged run (its validated
-- candidates in staging). After a merge every key is 'in both, same values', 'deactivated' (gone from the
-- source) or 'held' (all its rows rejected: prod keeps it untouched); any other outcome is a difference.
WITH run AS (
    SELECT run_id, logical_date, window_start, window_end
    FROM dqm.dq_runs
    WHERE pipeline = 'crypto_events' AND status = 'merged'
    ORDER BY logical_date DESC, started_at DESC
    LIMIT 1
), source AS (
    SELECT c.site_id, c.user_id, c.purchase_date, c.crypto_type, c.purchase_price, c.purchase_units
    FROM staging.bt_crypto_events_candidate AS c
    JOIN run USING (run_id)
), target AS (
    SELECT p.site_id, p.user_id, p.purchase_date, p.crypto_type, p.purchase_price, p.purchase_units, p.is_active
    FROM prod.bt_crypto_events AS p
    CROSS JOIN run
    WHERE p.purchase_date BETWEEN run.window_start AND run.window_end
), held AS (
    SELECT DISTINCT r.key_site_id, r.key_user_id, r.key_purchase_date, r.key_crypto_type
    FROM dqm.bt_crypto_events_rejects AS r
    JOIN run USING (run_id)
    WHERE r.key_site_id IS NOT NULL
), compared AS (
    SELECT CASE
               WHEN t.site_id IS NULL THEN 'missing in prod'
               WHEN s.site_id IS NULL AND h.key_site_id IS NOT NULL THEN 'held (all its rows rejected)'
               WHEN s.site_id IS NULL AND t.is_active THEN 'active in prod, not in source'
               WHEN s.site_id IS NULL THEN 'deactivated (gone from the source)'
               WHEN NOT t.is_active THEN 'in source, inactive in prod'
               WHEN (s.purchase_price, s.purchase_units) IS DISTINCT FROM (t.purchase_price, t.purchase_units)
                   THEN 'value differs'
               ELSE 'in both, same values'
           END AS outcome
    FROM source AS s
    FULL JOIN target AS t USING (site_id, user_id, purchase_date, crypto_type)
    LEFT JOIN held AS h
        ON (h.key_site_id, h.key_user_id, h.key_purchase_date, h.key_crypto_type)
         = (coalesce(s.site_id, t.site_id), coalesce(s.user_id, t.user_id),
            coalesce(s.purchase_date, t.purchase_date), coalesce(s.crypto_type, t.crypto_type))
)
SELECT run.logical_date,
       run.window_start,
       run.window_end,
       o.outcome,
       count(c.outcome) AS keys,
       o.expected
FROM run
CROSS JOIN (VALUES ('in both, same values', TRUE),
                   ('deactivated (gone from the source)', TRUE),
                   ('held (all its rows rejected)', TRUE),
                   ('missing in prod', FALSE),
                   ('in source, inactive in prod', FALSE),
                   ('value differs', FALSE),
                   ('active in prod, not in source', FALSE)) AS o (outcome, expected)
LEFT JOIN compared AS c ON c.outcome = o.outcome
GROUP BY run.logical_date, run.window_start, run.window_end, o.outcome, o.expected
ORDER BY o.expected DESC, keys DESC;
