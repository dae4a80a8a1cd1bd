-- Text formats (CSV, JSON lines) are parsed once into a temp table; the checks and the load
-- then read that table. The source slot takes the format's staging SELECT (sql/staging/)..
CREATE TEMP TABLE stage_raw AS
{{ source }}
