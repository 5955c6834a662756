-- Crypto events: the data stewards' corrections of quarantined rows (python -m jobs.crypto_events.replay),
-- newest first: who, why, the values as quarantined and as corrected, and how the last merged run that applied
-- it judged it (inserted / updated / reactivated / unchanged in prod, collapsed into an identical row, rejected
-- again with the new reason, or absent: not among the source rows of its date's window).
SELECT k.logical_date,
       k.corrected_at,
       k.corrected_by,
       k.why,
       r.rule_codes AS quarantined_for,
       concat_ws(' | ', r.raw_site_id, r.raw_user_id, r.raw_purchase_date, r.raw_crypto_type,
                 r.raw_purchase_price, r.raw_purchase_units) AS quarantined_values,
       concat_ws(' | ', k.site_id, k.user_id, k.purchase_date, k.crypto_type, k.purchase_price,
                 k.purchase_units) AS corrected_values,
       k.outcome,
       k.outcome_reason,
       k.judged_at,
       k.judged_by_run_id::text AS judged_by_run_id,
       k.run_id::text AS quarantined_by_run,
       k.landing_row,
       k.correction_id
FROM dqm.bt_crypto_events_corrections AS k
LEFT JOIN dqm.bt_crypto_events_rejects AS r USING (run_id, landing_row)
ORDER BY k.corrected_at DESC, k.correction_id DESC;
