-- Cost per plan, hour and component ($) and unmet demand per plan, hour and series.
CREATE TABLE plan_costs (
    plan_id VARCHAR NOT NULL,
    hour TIMESTAMP NOT NULL,
    component VARCHAR NOT NULL,
    dollars DOUBLE NOT NULL
);
