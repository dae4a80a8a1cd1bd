-- What operations must do, and by when.
CREATE TABLE plan_actions (
    plan_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    region VARCHAR NOT NULL,
    vm_type VARCHAR NOT NULL,
    model VARCHAR,
    count INTEGER NOT NULL,
    hour TIMESTAMP NOT NULL,
    start_by TIMESTAMP NOT NULL,
    ready_at TIMESTAMP NOT NULL
);
