-- The staged file as a temporary table (one read of the file per ingest).
CREATE TEMP TABLE agg_raw AS SELECT * FROM ({{ source }})
