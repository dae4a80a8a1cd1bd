-- Request log in the native schema. arrival_time is UTC. request_id is unique across the table;
-- the ingest enforces it (a primary-key index on tens of millions of strings costs more than
-- the anti-join the ingest does anyway).
CREATE TABLE requests (
    request_id VARCHAR NOT NULL,
    arrival_time TIMESTAMP NOT NULL,
    region VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    tier VARCHAR NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    tenant VARCHAR,
    ttft_ms DOUBLE,
    e2e_ms DOUBLE,
    file_id VARCHAR NOT NULL
);
