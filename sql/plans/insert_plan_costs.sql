-- Store a plan's costs (staged frame registered as staged_costs).
INSERT INTO plan_costs BY NAME SELECT * FROM staged_costs
