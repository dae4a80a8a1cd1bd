-- Store a plan's routing (staged frame registered as staged_routing).
INSERT INTO plan_routing BY NAME SELECT * FROM staged_routing
