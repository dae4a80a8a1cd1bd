-- Per-minute aggregates, Parquet: the file's columns, record number from the file.
SELECT file_row_number + 1 AS _row, * EXCLUDE (file_row_number)
FROM read_parquet($path, file_row_number = true)
