-- Store a plan's assignments (staged frame registered as staged_assignments).
INSERT INTO plan_assignments BY NAME SELECT * FROM staged_assignments
