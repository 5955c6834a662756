-- Crypto events: quarantined rows by rule and logical date (a row breaking two rules counts for both).
SELECT r.logical_date,
       code AS rule_code,
       count(*) AS rows
FROM dqm.bt_crypto_events_rejects AS r
CROSS JOIN LATERAL unnest(r.rule_codes) AS code
GROUP BY r.logical_date, code
ORDER BY r.logical_date, code;
