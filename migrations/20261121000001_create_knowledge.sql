-- Knowledge base: runbooks, their chunks, and the embedding models that produced vectors.
CREATE EXTENSION IF NOT EXISTS vector;

-- Every embedding model ever used. A chunk's vector is only comparable with vectors of the
-- same model, so chunks record which model embedded them; switching models re-embeds.
CREATE TABLE embedding_models (
    id         SERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    dim        INTEGER NOT NULL CHECK (dim > 0 AND dim <= 2000),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE runbooks (
    id           BIGSERIAL PRIMARY KEY,
    -- Identity: the path relative to the folder given to `sentinel ingest`.
    path         TEXT NOT NULL UNIQUE,
    -- The folder it was ingested from; a re-ingest of that folder removes vanished files.
    source       TEXT NOT NULL,
    title        TEXT NOT NULL,
    alerts       TEXT[] NOT NULL DEFAULT '{}',
    services     TEXT[] NOT NULL DEFAULT '{}',
    tags         TEXT[] NOT NULL DEFAULT '{}',
    urls         TEXT[] NOT NULL DEFAULT '{}',
    actions      JSONB NOT NULL DEFAULT '[]',
    -- Normalised (lower-case alphanumeric) alert names, title and file name, for exact matches.
    match_keys   TEXT[] NOT NULL DEFAULT '{}',
    -- Normalised file name, to find candidates for a runbook_url's last path segment.
    stem_key     TEXT NOT NULL DEFAULT '',
    -- Normalised `urls` (no scheme, query or trailing slash).
    url_keys     TEXT[] NOT NULL DEFAULT '{}',
    content_hash TEXT NOT NULL,
    ingested_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX runbooks_match_keys_idx ON runbooks USING GIN (match_keys);
CREATE INDEX runbooks_url_keys_idx ON runbooks USING GIN (url_keys);
CREATE INDEX runbooks_stem_key_idx ON runbooks (stem_key);
CREATE INDEX runbooks_source_idx ON runbooks (source);

CREATE TABLE chunks (
    -- Stable id: hash of runbook path, heading path and part number.
    id           TEXT PRIMARY KEY,
    runbook_id   BIGINT NOT NULL REFERENCES runbooks(id) ON DELETE CASCADE,
    ord          INTEGER NOT NULL,
    heading_path TEXT[] NOT NULL DEFAULT '{}',
    -- heading_path joined by spaces (array_to_string is not immutable, so it cannot feed tsv).
    heading_text TEXT NOT NULL DEFAULT '',
    anchor       TEXT NOT NULL DEFAULT '',
    body         TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    model_id     INTEGER REFERENCES embedding_models(id),
    -- No fixed dimension: each model gets its own partial expression HNSW index,
    -- created when the model is registered (see db::ensure_model_index).
    embedding    vector,
    tsv          TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('english', heading_text), 'A') ||
        setweight(to_tsvector('english', body), 'B')
    ) STORED
);

CREATE INDEX chunks_runbook_idx ON chunks (runbook_id, ord);
CREATE INDEX chunks_tsv_idx ON chunks USING GIN (tsv);
