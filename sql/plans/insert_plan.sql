-- Store a plan's header (staged frame registered as staged_plan).
INSERT INTO plans BY NAME SELECT * FROM staged_plan
