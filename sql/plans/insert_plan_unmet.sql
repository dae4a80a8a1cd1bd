-- Store a plan's unmet (staged frame registered as staged_unmet).
INSERT INTO plan_unmet BY NAME SELECT * FROM staged_unmet
