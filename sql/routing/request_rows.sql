-- Request rows of one region and model in [$start, $end), arrival order: the routing
-- scenario's log (planner.sim.routers) and the length predictor's rows (planner.sim.length).
-- $keep_every > 1 keeps a deterministic subsample (rows whose request_id hashes to 0 modulo it).
SELECT arrival_time, region, model, tier, coalesce(tenant, '') AS tenant,
       input_tokens, output_tokens
FROM requests
WHERE model = $model
  AND ($region = '' OR region = $region)
  AND arrival_time >= $start AND arrival_time < $end
  AND hash(request_id) % $keep_every = 0
ORDER BY arrival_time, request_id
