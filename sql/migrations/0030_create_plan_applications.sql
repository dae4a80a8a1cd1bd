-- What the executor applied: one row per plan, region and hour the target accepted (the
-- desired-state document as JSON). The fleet a new plan starts from is read from here (the
-- newest accepted document per region before the new plan's first hour), never from the plan
-- being replaced.
CREATE TABLE plan_applications (
    plan_id VARCHAR NOT NULL,
    hour TIMESTAMP NOT NULL,
    region VARCHAR NOT NULL,
    document VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL
);
