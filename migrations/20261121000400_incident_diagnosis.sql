-- When the incident's thread got its diagnosis (LLM draft or runbook fallback). NULL means
-- the runbook reply still waits to be replaced by a diagnosis: a replica that crashed midway
-- leaves it NULL and the next sync finishes the job.
ALTER TABLE incidents ADD COLUMN diagnosed_at timestamptz;
