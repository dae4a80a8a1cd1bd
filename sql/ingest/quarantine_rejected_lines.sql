-- Lines the reader could not parse (field count, encoding, quoting), one row per line.
INSERT INTO requests_quarantine
SELECT
    $file_id,
    $path,
    line - $header_lines,
    NULL,
    string_agg(error_type || ': ' || error_message, '; ' ORDER BY error_type),
    any_value(csv_line),
    $now
FROM stage_rejects
GROUP BY line
