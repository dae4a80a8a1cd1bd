-- Input and output token-length distribution per model and tier: quantiles and mean.
SELECT
    model, tier,
    count(*) AS requests,
    avg(input_tokens) AS input_mean,
    quantile_cont(input_tokens, [0.1, 0.5, 0.9, 0.99]) AS input_q,
    avg(output_tokens) AS output_mean,
    quantile_cont(output_tokens, [0.1, 0.5, 0.9, 0.99]) AS output_q
FROM requests
GROUP BY ALL
ORDER BY model, tier
