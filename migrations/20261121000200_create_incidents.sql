-- Alerts as received (the durable intake log) and the incidents they group into.

CREATE TABLE alerts (
    id            bigserial PRIMARY KEY,
    source        text        NOT NULL,
    fingerprint   text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz,
    group_key     text        NOT NULL,
    alertname     text        NOT NULL,
    severity      text        NOT NULL,
    labels        jsonb       NOT NULL,
    annotations   jsonb       NOT NULL,
    links         jsonb       NOT NULL,
    origin        jsonb,
    received_at   timestamptz NOT NULL DEFAULT now(),
    -- Set once the incident engine has applied the alert (a queue read with SKIP LOCKED).
    processed_at  timestamptz,
    -- A redelivery of the same alert state is stored once.
    UNIQUE (fingerprint, status, starts_at)
);
CREATE INDEX alerts_pending_idx ON alerts (id) WHERE processed_at IS NULL;

-- Storm digests: one message per channel listing incidents that arrived too fast.
CREATE TABLE storm_digests (
    id            bigserial PRIMARY KEY,
    channel       text        NOT NULL,
    opened_at     timestamptz NOT NULL DEFAULT now(),
    last_added_at timestamptz NOT NULL DEFAULT now(),
    root_ts       text,
    version       bigint      NOT NULL DEFAULT 1,
    shown_version bigint      NOT NULL DEFAULT 0,
    sync_owner    uuid,
    sync_until    timestamptz
);
CREATE INDEX storm_digests_channel_idx ON storm_digests (channel, last_added_at DESC);

CREATE TABLE incidents (
    id                bigserial PRIMARY KEY,
    group_key         text        NOT NULL UNIQUE,
    source            text        NOT NULL,
    alertname         text        NOT NULL,
    channel           text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    severity          text        NOT NULL,
    summary           text,
    opened_at         timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    resolved_at       timestamptz,
    reopened          int         NOT NULL DEFAULT 0,
    -- The thread: Sentinel's own root, or the alert message a channel integration posted.
    root_ts           text,
    root_is_ours      boolean     NOT NULL DEFAULT true,
    -- Set when the incident arrived during a storm: it is listed in the digest instead.
    digest_id         bigint REFERENCES storm_digests (id),
    runbook_reply_ts  text,
    -- Status last announced in the thread (resolution reply / reopen reply).
    announced_status  text        NOT NULL DEFAULT 'firing',
    announced_reopen  int         NOT NULL DEFAULT 0,
    -- Bumped on every change; Slack is synced while shown_version < version.
    version           bigint      NOT NULL DEFAULT 1,
    shown_version     bigint      NOT NULL DEFAULT 0,
    -- Lease of the replica syncing this incident to Slack (no row lock held across calls).
    sync_owner        uuid,
    sync_until        timestamptz
);
CREATE INDEX incidents_dirty_idx ON incidents (id) WHERE shown_version < version;
CREATE INDEX incidents_open_idx ON incidents (opened_at DESC) WHERE status = 'firing';
CREATE INDEX incidents_channel_opened_idx ON incidents (channel, opened_at DESC);

-- Current state of each alert series within an incident.
CREATE TABLE incident_alerts (
    incident_id  bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    fingerprint  text        NOT NULL,
    status       text        NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz,
    labels       jsonb       NOT NULL,
    annotations  jsonb       NOT NULL,
    links        jsonb       NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_id, fingerprint)
);

-- The incident's timeline for `/sentinel incident ID`.
CREATE TABLE incident_events (
    id           bigserial PRIMARY KEY,
    incident_id  bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT now(),
    kind         text        NOT NULL,
    detail       text        NOT NULL
);
CREATE INDEX incident_events_incident_idx ON incident_events (incident_id, at);
