-- Files folded into the mart.
UPDATE ingested_files SET mart_refreshed = true WHERE NOT mart_refreshed
