-- Store a plan's actions (staged frame registered as staged_actions).
INSERT INTO plan_actions BY NAME SELECT * FROM staged_actions
