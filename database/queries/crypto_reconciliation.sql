-- Crypto events: does every run add up? Per run, newest first: read = valid + rejected + duplicates,
-- valid = inserted + updated + reactivated + unchanged, the quarantined rows against the run's reject count
-- (every run keeps its own rejects), and the landing snapshot against the rows read (NULL once pruned).
WITH quarantined AS (
    SELECT run_id, count(*) AS rows
    FROM dqm.bt_crypto_events_rejects
    GROUP BY run_id
), landed AS (
    SELECT run_id, count(*) AS rows
    FROM raw.bt_crypto_landing
    GROUP BY run_id
)
SELECT r.logical_date,
       r.status,
       r.rows_read,
       r.rows_unplaced,
       r.rows_valid,
       r.rows_rejected,
       r.duplicates_collapsed,
       r.rows_read = r.rows_valid + r.rows_rejected + r.duplicates_collapsed AS read_reconciled,
       r.rows_valid = r.rows_inserted + r.rows_updated + r.rows_reactivated + r.rows_unchanged AS merge_reconciled,
       coalesce(q.rows, 0) AS rows_in_quarantine,
       CASE WHEN r.rows_rejected IS NOT NULL THEN coalesce(q.rows, 0) = r.rows_rejected END AS quarantine_matches,
       l.rows AS rows_in_landing,
       CASE WHEN l.rows IS NOT NULL THEN l.rows = r.rows_read END AS landing_matches,
       r.started_at,
       r.run_id
FROM dqm.dq_runs AS r
LEFT JOIN quarantined AS q USING (run_id)
LEFT JOIN landed AS l USING (run_id)
WHERE r.pipeline = 'crypto_events'
ORDER BY r.started_at DESC;
