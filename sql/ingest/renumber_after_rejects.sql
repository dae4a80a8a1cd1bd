-- The text reader numbers only the lines it accepted. Shift each accepted row's number past
-- the rejected records before it: the i-th rejected record r_i (in order) has r_i - i accepted
-- rows before it, so accepted row k sits after every r_i with r_i - i < k.
UPDATE stage_raw AS c
SET _row = c._row + (
    SELECT count(*)
    FROM (
        SELECT rec - row_number() OVER (ORDER BY rec) AS accepted_before
        FROM (SELECT DISTINCT line - $header_lines AS rec FROM stage_rejects) AS r
    ) AS rejected
    WHERE rejected.accepted_before < c._row
)
