-- The tamper-evident audit log (src/audit/, docs/audit.md): one row per state change of an
-- action, in the same transaction as the change. Rows are chained: `hash` is
-- HMAC-SHA256(SENTINEL_AUDIT_KEY, prev_hash || canonical bytes of the row), the key never
-- enters the database. `seq` is gap-free: appenders take an advisory lock and write head + 1.
CREATE TABLE audit_events (
    seq          bigint PRIMARY KEY CHECK (seq > 0),
    at           timestamptz NOT NULL,
    -- A Slack user id (U..., W...) or `sentinel`.
    actor_id     text NOT NULL,
    actor_name   text NOT NULL,
    kind         text NOT NULL,
    incident_id  bigint,
    proposal_id  bigint,
    action       text,
    argv         text[],
    outcome      text,
    -- Canonical JSON text (sorted keys, no whitespace), hashed verbatim: text, not jsonb,
    -- so the bytes read back are the bytes hashed. Query it with `detail::jsonb`.
    detail       text NOT NULL,
    prev_hash    text NOT NULL,
    hash         text NOT NULL
);

CREATE INDEX audit_events_incident_idx ON audit_events (incident_id, seq) WHERE incident_id IS NOT NULL;
CREATE INDEX audit_events_at_idx ON audit_events (at);

-- Append-only, even for the table's owner: UPDATE and DELETE are refused row by row,
-- TRUNCATE (which fires no DELETE trigger) by a statement trigger. A superuser or the owner
-- can still disable triggers, which is why the chain is keyed and its head anchored outside.
CREATE FUNCTION audit_events_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse();

-- The role `sentinel serve` connects as should not own this table (an owner can disable its
-- triggers) and needs only INSERT and SELECT on it. As the owner (docs/audit.md):
--
--   REVOKE ALL ON audit_events FROM sentinel_app;
--   GRANT SELECT, INSERT ON audit_events TO sentinel_app;
--
-- (`seq` comes from the chain head, not a sequence: no USAGE on a sequence is needed.)
