-- Crypto events: does every run add up? Per run, newest first: read = valid + rejected + duplicates,
-- valid = inserted + updated + reactivated + unchanged, and (for the latest run of each logical date,
-- whose rejects the quarantine keeps) the quarantined rows against the run's reject count.
WITH latest AS (
    SELECT DISTINCT ON (logical_date) run_id
    FROM dqm.dq_runs
    WHERE pipeline = 'crypto_events'
    ORDER BY logical_date, started_at DESC
), quarantined AS (
    SELECT run_id, count(*) AS rows
    FROM dqm.bt_crypto_events_rejects
    GROUP BY run_id
)
SELECT r.logical_date,
       r.status,
       r.rows_read,
       r.rows_valid,
       r.rows_rejected,
       r.duplicates_collapsed,
       r.rows_read = r.rows_valid + r.rows_rejected + r.duplicates_collapsed AS read_reconciled,
       r.rows_valid = r.rows_inserted + r.rows_updated + r.rows_reactivated + r.rows_unchanged AS merge_reconciled,
       coalesce(q.rows, 0) AS rows_in_quarantine,
       CASE WHEN l.run_id IS NOT NULL THEN coalesce(q.rows, 0) = r.rows_rejected END AS quarantine_matches,
       r.started_at,
       r.run_id
FROM dqm.dq_runs AS r
LEFT JOIN quarantined AS q USING (run_id)
LEFT JOIN latest AS l USING (run_id)
WHERE r.pipeline = 'crypto_events'
ORDER BY r.started_at DESC;
