-- One row per plan: when it was made, for which hours, the solver facts behind it and the
-- fleet state it started from (JSON), so a plan can be rebuilt and explained later.
CREATE TABLE plans (
    plan_id VARCHAR PRIMARY KEY,
    as_of TIMESTAMP NOT NULL,
    start TIMESTAMP NOT NULL,
    hours INTEGER NOT NULL,
    forecast_origin TIMESTAMP,
    status VARCHAR NOT NULL,
    objective DOUBLE,
    gap DOUBLE,
    dual_bound DOUBLE,
    solve_seconds DOUBLE NOT NULL,
    build_seconds DOUBLE NOT NULL,
    scip_version VARCHAR NOT NULL,
    config_hash VARCHAR NOT NULL,
    fallback BOOLEAN NOT NULL,
    fallback_reason VARCHAR,
    warm_start VARCHAR,
    total_cost DOUBLE NOT NULL,
    verified BOOLEAN NOT NULL,
    violations VARCHAR,
    export_path VARCHAR,
    state VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL
);
