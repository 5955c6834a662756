-- Churn: every ingested source file (batch), newest first, with its quarantine counts, gate verdict and
-- warnings (e.g. TPV_SEGMENT_DETAIL_UNKNOWN: the share of segments outside CHURN_KNOWN_SEGMENTS and the
-- most frequent of them; warnings never reject a row). Rejected rows: dqm.churn_rejects by batch_id.
SELECT as_of,
       source,
       status,
       rows_read,
       rows_valid,
       rows_rejected,
       duplicates_collapsed,
       rejects_by_rule,
       gate -> 'warning_rules' AS warnings,
       batch_id::text AS batch_id,
       gx_results_uri,
       file_path,
       started_at,
       finished_at,
       message
FROM dqm.churn_batches
ORDER BY started_at DESC;
