-- Crypto events: quarantined rows by rule and logical date, as the latest completed (merged or blocked) run of
-- each date judged them (a rerun keeps its own rows; a row breaking two rules counts for both). Rows whose
-- date no window can hold count on the date of the run that quarantined them, once.
WITH latest AS (
    SELECT DISTINCT ON (logical_date) run_id, logical_date
    FROM dqm.dq_runs
    WHERE pipeline = 'crypto_events' AND status IN ('merged', 'blocked')
    ORDER BY logical_date, started_at DESC
)
SELECT l.logical_date,
       code AS rule_code,
       count(*) AS rows
FROM dqm.bt_crypto_events_rejects AS r
JOIN latest AS l USING (run_id)
CROSS JOIN LATERAL unnest(r.rule_codes) AS code
GROUP BY l.logical_date, code
ORDER BY l.logical_date, code;
