-- Postings for BM25, impact-ordered: one row per (lexeme, chunk) with the term's BM25
-- weight in that chunk (`impact`: the tf and length part, k1 = 1.2, b = 0.75, against the
-- mean chunk length when it was written). A query multiplies by idf and sums, reading only
-- the best postings of each of its rarest lexemes from one index range: milliseconds at
-- 100,000 chunks. Written by ingest from `tsv` (`knowledge::search::index_terms`).
CREATE TABLE chunk_terms (
    lexeme   text  NOT NULL,
    chunk_id text  NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    impact   real  NOT NULL,
    PRIMARY KEY (lexeme, chunk_id)
);
CREATE INDEX chunk_terms_chunk_idx ON chunk_terms (chunk_id);
CREATE INDEX chunk_terms_impact_idx ON chunk_terms (lexeme, impact DESC) INCLUDE (chunk_id);

-- tf with heading lexemes counted twice, as in `sentinel_tsv_len`.
CREATE FUNCTION sentinel_bm25_impact(tf real, len real, avg_len real) RETURNS real
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT (tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len / greatest(avg_len, 1))))::real
$$;

INSERT INTO chunk_terms (lexeme, chunk_id, impact)
SELECT u.lexeme, c.id,
       sentinel_bm25_impact(
           (coalesce(cardinality(u.positions), 1)
              + coalesce(cardinality(array_positions(u.weights, 'A')), 0))::real,
           greatest(c.tsv_len, 1)::real,
           (SELECT greatest(coalesce(avg(tsv_len), 1), 1) FROM chunks)::real)
FROM chunks c, unnest(c.tsv) u;
