-- Crash-safe Slack posts: the intent to post is recorded before the call, so a replica that
-- finds an attempt without a `ts` looks for the marked message in Slack before posting again.
ALTER TABLE incidents ADD COLUMN root_attempted_at timestamptz;
ALTER TABLE incidents ADD COLUMN reply_attempted_at timestamptz;
ALTER TABLE incidents ADD COLUMN announce_attempted text;
ALTER TABLE storm_digests ADD COLUMN root_attempted_at timestamptz;
