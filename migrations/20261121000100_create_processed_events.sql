-- Slack deliveries already acted on. Slack redelivers events (retry_attempt > 0) and
-- several bot replicas may share this database: a worker acts only when its INSERT
-- ... ON CONFLICT DO NOTHING actually inserted the row.
CREATE TABLE processed_events (
    -- `event:<event_id>`, `command:<trigger_id>`, `action:<user>:<action_id>:<action_ts>`, ...
    event_key    TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX processed_events_processed_at_idx ON processed_events (processed_at);
