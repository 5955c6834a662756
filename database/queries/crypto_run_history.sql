-- Crypto events: every run, newest first, with what it read, its reconciliation (read = valid + rejected +
-- duplicates; valid = inserted + updated + reactivated + unchanged) and how long it took.
SELECT logical_date,
       status,
       gate_passed,
       rows_read,
       rows_unplaced,
       rows_valid,
       rows_rejected,
       duplicates_collapsed,
       rows_inserted,
       rows_updated,
       rows_deactivated,
       rows_reactivated,
       rows_unchanged,
       keys_held,
       rows_corrected,
       is_replay,
       rows_read = rows_valid + rows_rejected + duplicates_collapsed AS reconciled,
       round(extract(epoch FROM finished_at - started_at)::numeric, 1) AS seconds,
       started_at,
       finished_at,
       dag_run_id,
       source,
       reproduces_run_id,
       message,
       run_id
FROM dqm.dq_runs
WHERE pipeline = 'crypto_events'
ORDER BY started_at DESC;
