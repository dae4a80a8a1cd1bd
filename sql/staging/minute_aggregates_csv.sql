-- Per-minute aggregates, CSV with a header: every column as text (cast and checked in one
-- place, sql/aggregates/check.sql), record number in file order (line = record + 1).
SELECT row_number() OVER () AS _row, *
FROM read_csv($path, header = true, all_varchar = true)
