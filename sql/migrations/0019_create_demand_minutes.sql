-- Per-minute demand aggregates (what a platform's metrics export holds instead of request
-- rows): requests, input and output token sums and the inter-arrival CV per minute, region,
-- model and tier. The demand mart and the replay read them beside the request rows.
CREATE TABLE demand_minutes (
    minute TIMESTAMP NOT NULL,
    region VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    tier VARCHAR NOT NULL,
    requests BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cv DOUBLE,
    file_id VARCHAR NOT NULL,
    PRIMARY KEY (minute, region, model, tier)
)
