-- The week before $as_of of the demand mart (token mix per model and tier).
SELECT model, tier, input_tokens, output_tokens
FROM demand_hourly
WHERE hour >= $as_of - INTERVAL 7 DAY AND hour < $as_of
