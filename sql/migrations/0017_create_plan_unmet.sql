-- Demand a plan leaves unmet (tokens/s), per hour, region, model and tier.
CREATE TABLE plan_unmet (
    plan_id VARCHAR NOT NULL,
    hour TIMESTAMP NOT NULL,
    region VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    tier VARCHAR NOT NULL,
    tokens_per_s DOUBLE NOT NULL
);
