-- Remediation actions: a proposal per offered action (the durable state machine the
-- Slack message shows), the approvals it collected, and the switches every replica obeys.

CREATE TABLE action_proposals (
    id              bigserial   PRIMARY KEY,
    incident_id     bigint      REFERENCES incidents (id),
    runbook_path    text        NOT NULL,
    action_id       text        NOT NULL,
    title           text        NOT NULL,
    risk            text        NOT NULL CHECK (risk IN ('low', 'medium', 'high')),
    -- The exact argv, resolved and validated at proposal time; a click can only point here.
    argv            text[]      NOT NULL,
    params          jsonb       NOT NULL DEFAULT '{}',
    verify_argv     text[],
    verify_expect   text,
    verify_timeout_secs integer,
    rollback_argv   text[],
    rollback_auto   boolean     NOT NULL DEFAULT false,
    timeout_secs    integer     NOT NULL,
    approvers       text[]      NOT NULL,
    approvals_needed integer    NOT NULL,
    -- Whoever asked with `/sentinel run` (never one of the approvers); NULL when Sentinel proposed.
    requested_by    text,
    auto            boolean     NOT NULL DEFAULT false,
    channel         text        NOT NULL,
    thread_ts       text,
    message_ts      text,
    state           text        NOT NULL DEFAULT 'proposed',
    expires_at      timestamptz NOT NULL,
    -- The run lease: a run whose lease expires without an exit is `outcome_unknown`, never re-run.
    run_owner       uuid,
    run_until       timestamptz,
    stop_requested  boolean     NOT NULL DEFAULT false,
    -- Who made the last decision (rejected, stopped, rolled back), for the message.
    decided_by      text,
    started_at      timestamptz,
    finished_at     timestamptz,
    exit_code       integer,
    output          text,
    verify_output   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX action_proposals_incident_idx ON action_proposals (incident_id);
CREATE INDEX action_proposals_open_idx ON action_proposals (state)
    WHERE state IN ('proposed', 'awaiting_second', 'approved', 'running', 'verifying', 'rolling_back');
CREATE INDEX action_proposals_started_idx ON action_proposals (started_at) WHERE started_at IS NOT NULL;
-- One action at a time per incident.
CREATE UNIQUE INDEX action_proposals_one_running_idx ON action_proposals (incident_id)
    WHERE state IN ('running', 'verifying', 'rolling_back') AND incident_id IS NOT NULL;

CREATE TABLE action_approvals (
    proposal_id bigint      NOT NULL REFERENCES action_proposals (id),
    user_id     text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (proposal_id, user_id)
);

-- `global` is the kill switch; `auto:<action_id>` is an action's auto-approval.
CREATE TABLE action_switches (
    name        text        PRIMARY KEY,
    paused      boolean     NOT NULL,
    reason      text        NOT NULL DEFAULT '',
    updated_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
