-- Store a plan's instances (staged frame registered as staged_instances).
INSERT INTO plan_instances BY NAME SELECT * FROM staged_instances
