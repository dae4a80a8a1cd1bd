-- Demand mart: per hour × region × model × tier. coverage is the share of the hour that some
-- ingested file spans: 0 marks a collection gap (unknown demand), not zero demand.
CREATE TABLE demand_hourly (
    hour TIMESTAMP NOT NULL,
    region VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    tier VARCHAR NOT NULL,
    requests BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    input_rate DOUBLE NOT NULL,
    output_rate DOUBLE NOT NULL,
    token_rate DOUBLE NOT NULL,
    peak_minute_token_rate DOUBLE NOT NULL,
    peak_minute_requests BIGINT NOT NULL,
    coverage DOUBLE NOT NULL,
    PRIMARY KEY (hour, region, model, tier)
);
