-- Every published hourly forecast row (bench/forecast_sanity.py replays the sanity guard on them).
SELECT origin, hour, h, region || '|' || model || '|' || tier || '|' || metric AS series,
       point, q_0_025, q_0_05, q_0_5, q_0_9, q_0_95, q_0_975, q_0_99, forecaster, fallback
FROM forecasts
WHERE origin >= $since
ORDER BY origin, series, h
