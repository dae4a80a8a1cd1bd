-- Record what a target accepted for one region of a plan's first hour.
INSERT INTO plan_applications VALUES ($plan_id, $hour, $region, $document, $applied_at)
