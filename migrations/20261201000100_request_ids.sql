-- Log correlation: the request that brought an alert (a webhook's X-Request-ID, or a
-- Slack event id), and the last one that changed each incident. Logs only; never shown.
ALTER TABLE alerts ADD COLUMN request_id text;
ALTER TABLE incidents ADD COLUMN request_id text;
