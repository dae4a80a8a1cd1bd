-- The NIW schedule per plan, hour and model ((tokens/s)·h: × 3600 for tokens).
CREATE TABLE plan_niw (
    plan_id VARCHAR NOT NULL,
    hour TIMESTAMP NOT NULL,
    model VARCHAR NOT NULL,
    arrivals DOUBLE NOT NULL,
    served DOUBLE NOT NULL,
    backlog DOUBLE NOT NULL,
    late DOUBLE NOT NULL
);
