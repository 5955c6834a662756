-- Churn: the 50 customers most at risk in the latest batch scoring, with the model version that scored them.
SELECT customer_id,
       snapshot_date,
       round(probability::numeric, 4) AS probability,
       risk_band,
       model_name,
       model_version,
       model_alias,
       feature_version,
       scored_at
FROM prod.churn_scores
WHERE (snapshot_date, scored_at) = (
    SELECT snapshot_date, max(scored_at) FROM prod.churn_scores
    GROUP BY snapshot_date ORDER BY snapshot_date DESC LIMIT 1)
ORDER BY probability DESC, customer_id
LIMIT 50;
