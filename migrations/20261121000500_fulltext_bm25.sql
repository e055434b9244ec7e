-- BM25 for the full-text half of hybrid search (ts_rank ranks poorly: it has no idf).
--
-- * `ident_text`: the words inside the chunk's CamelCase identifiers (`KubeAPIDown` ->
--   `kube api down kubeapi ...`), written by ingest, indexed with the body.
-- * `tsv_len`: the chunk's length in BM25 terms (heading lexemes count twice, as their
--   term frequency does).
-- * `fulltext_stats`: corpus size and mean length, refreshed with `lexeme_df`.

CREATE FUNCTION sentinel_tsv_len(tsvector) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT coalesce(sum(coalesce(cardinality(positions), 1)
                        + coalesce(cardinality(array_positions(weights, 'A')), 0)), 0)::integer
    FROM unnest($1)
$$;

ALTER TABLE chunks ADD COLUMN ident_text text NOT NULL DEFAULT '';
DROP INDEX chunks_tsv_idx;
ALTER TABLE chunks DROP COLUMN tsv;
ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', heading_text), 'A')
    || setweight(to_tsvector('english', body || ' ' || ident_text), 'B')
) STORED;
ALTER TABLE chunks ADD COLUMN tsv_len integer GENERATED ALWAYS AS (
    sentinel_tsv_len(setweight(to_tsvector('english', heading_text), 'A')
                     || setweight(to_tsvector('english', body || ' ' || ident_text), 'B'))
) STORED;
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);

CREATE TABLE fulltext_stats (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    chunks  bigint  NOT NULL,
    avg_len float8  NOT NULL
);
