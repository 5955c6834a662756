-- Crypto events: the rows of upstream's table whose purchase_date no window can hold (missing, unparseable,
-- impossible, before any plausible history, far in the future). Each is quarantined once, by the first merged
-- run that saw it; whether it is still in upstream's table right now is the last column.
SELECT r.raw_purchase_date,
       r.rule_codes,
       r.reason,
       r.raw_site_id,
       r.raw_user_id,
       r.raw_crypto_type,
       r.raw_purchase_price,
       r.raw_purchase_units,
       d.logical_date AS quarantined_by_run_of,
       r.rejected_at,
       -- looked up among the rows with the same date text: an index probe, not a scan of the history
       coalesce(
           EXISTS (
               SELECT 1 FROM raw.bt_crypto_transaction_history AS s
               WHERE s.purchase_date::text = r.raw_purchase_date AND encode(sha256(convert_to(json_build_array(s.site_id::text, s.user_id::text,
                     s.purchase_date::text, s.crypto_type::text, s.purchase_price::text,
                     s.purchase_units::text)::text, 'UTF8')), 'hex') = r.row_hash
           ),
           FALSE
       ) OR (
           r.raw_purchase_date IS NULL AND EXISTS (
               SELECT 1 FROM raw.bt_crypto_transaction_history AS s
               WHERE s.purchase_date IS NULL AND encode(sha256(convert_to(json_build_array(s.site_id::text, s.user_id::text,
                     s.purchase_date::text, s.crypto_type::text, s.purchase_price::text,
                     s.purchase_units::text)::text, 'UTF8')), 'hex') = r.row_hash
           )
       ) AS still_upstream,
       r.run_id
FROM dqm.bt_crypto_events_rejects AS r
JOIN dqm.dq_runs AS d ON d.run_id = r.run_id AND d.status = 'merged'
WHERE r.scope = 'unplaced'
ORDER BY r.rejected_at DESC, r.landing_row
LIMIT 1000;
