-- What the warehouse holds, in one row.
SELECT
    (SELECT max(version) FROM schema_migrations) AS schema_version,
    (SELECT count(*) FROM requests) AS requests,
    (SELECT min(arrival_time) FROM requests) AS first_arrival,
    (SELECT max(arrival_time) FROM requests) AS last_arrival,
    (SELECT count(*) FROM ingested_files) AS files,
    (SELECT count(*) FROM requests_quarantine) AS quarantined,
    (SELECT count(*) FROM demand_hourly) AS demand_hourly_rows,
    (SELECT count(*) FROM ingested_files WHERE NOT mart_refreshed AND rows_loaded > 0)
        AS files_pending_mart
