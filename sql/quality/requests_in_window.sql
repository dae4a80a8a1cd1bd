-- The request rows of [$start, $end): the batch the data-quality suite validates.
SELECT request_id, arrival_time, region, model, tier, input_tokens, output_tokens
FROM requests
WHERE arrival_time >= $start AND arrival_time < $end
