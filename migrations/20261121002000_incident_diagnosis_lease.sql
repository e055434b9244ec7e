-- Diagnoses run in their own pool, apart from Slack sync: a replica leases an incident whose
-- runbook reply is posted and whose diagnosis is not (`diagnosed_at IS NULL`) with
-- `FOR UPDATE SKIP LOCKED`, drafts it without holding a row lock, and clears the lease when
-- it records `diagnosed_at`. A crashed replica's diagnosis is picked up once its lease expires.
ALTER TABLE incidents ADD COLUMN diagnose_owner uuid;
ALTER TABLE incidents ADD COLUMN diagnose_until timestamptz;
CREATE INDEX incidents_undiagnosed_idx ON incidents (id)
    WHERE runbook_reply_ts IS NOT NULL AND diagnosed_at IS NULL;
