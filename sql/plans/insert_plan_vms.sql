-- Store a plan's vms (staged frame registered as staged_vms).
INSERT INTO plan_vms BY NAME SELECT * FROM staged_vms
