-- Store a plan's niw (staged frame registered as staged_niw).
INSERT INTO plan_niw BY NAME SELECT * FROM staged_niw
