-- VMs per plan, hour, region and VM type.
CREATE TABLE plan_vms (
    plan_id VARCHAR NOT NULL,
    hour TIMESTAMP NOT NULL,
    region VARCHAR NOT NULL,
    vm_type VARCHAR NOT NULL,
    on_demand INTEGER NOT NULL,
    spot INTEGER NOT NULL,
    PRIMARY KEY (plan_id, hour, region, vm_type)
);
