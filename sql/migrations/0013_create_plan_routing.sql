-- Routing weights per plan, hour, source region, model and tier to each serving region.
CREATE TABLE plan_routing (
    plan_id VARCHAR NOT NULL,
    hour TIMESTAMP NOT NULL,
    source_region VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    tier VARCHAR NOT NULL,
    target_region VARCHAR NOT NULL,
    weight DOUBLE NOT NULL,
    tokens_per_s DOUBLE NOT NULL
);
