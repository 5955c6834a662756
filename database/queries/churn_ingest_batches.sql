-- Churn: every ingested source file (batch), newest first, with its quarantine counts and gate verdict.
SELECT as_of,
       source,
       status,
       rows_read,
       rows_valid,
       rows_rejected,
       duplicates_collapsed,
       rejects_by_rule,
       file_path,
       started_at,
       finished_at,
       message
FROM dqm.churn_batches
ORDER BY started_at DESC;
