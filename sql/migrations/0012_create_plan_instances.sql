-- Model instances per plan, hour, region, model and VM type (whole numbers in committed hours,
-- instance capacity after them).
CREATE TABLE plan_instances (
    plan_id VARCHAR NOT NULL,
    hour TIMESTAMP NOT NULL,
    region VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    vm_type VARCHAR NOT NULL,
    on_demand DOUBLE NOT NULL,
    spot DOUBLE NOT NULL,
    committed BOOLEAN NOT NULL,
    PRIMARY KEY (plan_id, hour, region, model, vm_type)
);
