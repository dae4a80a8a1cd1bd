-- Served load per plan, hour, region, model, VM type and tier (tokens/s): what the capacity
-- check of the verifier recomputes, and what executors place.
CREATE TABLE plan_assignments (
    plan_id VARCHAR NOT NULL,
    hour TIMESTAMP NOT NULL,
    region VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    vm_type VARCHAR NOT NULL,
    tier VARCHAR NOT NULL,
    tokens_per_s DOUBLE NOT NULL,
    spot BOOLEAN NOT NULL
);
