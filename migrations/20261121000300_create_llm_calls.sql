-- One row per LLM call: token counts for cost tracking and the per-incident token budget.
CREATE TABLE llm_calls (
    id                BIGSERIAL PRIMARY KEY,
    -- What the tokens were spent on: an incident key, or NULL for questions outside one.
    incident_key      TEXT,
    -- `diagnosis`, `repair`, `question`.
    purpose           TEXT NOT NULL,
    model             TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens      INTEGER NOT NULL DEFAULT 0,
    -- `ok`, `timeout`, `rate_limited`, `server_error`, `rejected`, `error`.
    outcome           TEXT NOT NULL,
    duration_ms       INTEGER NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX llm_calls_incident_idx ON llm_calls (incident_key) WHERE incident_key IS NOT NULL;
