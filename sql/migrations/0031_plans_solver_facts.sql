-- The plan header's remaining solver facts and notes, so a stored plan loads back equal to the
-- plan that was made (planner.ilp.plan.SolverFacts; notes as a JSON list). Plans stored before
-- this migration load with the defaults (counts 0, bound source "unknown", no notes).
ALTER TABLE plans ADD COLUMN variables BIGINT DEFAULT 0;
ALTER TABLE plans ADD COLUMN constraints BIGINT DEFAULT 0;
ALTER TABLE plans ADD COLUMN bound_source VARCHAR DEFAULT 'unknown';
ALTER TABLE plans ADD COLUMN nodes BIGINT DEFAULT 0;
ALTER TABLE plans ADD COLUMN method VARCHAR DEFAULT 'monolithic SCIP';
ALTER TABLE plans ADD COLUMN notes VARCHAR DEFAULT '[]';
