-- Postings in the order full-text search reads them: best impact first, ties by chunk id.
-- The old index ended at the impact and left the tie-break to an incremental sort of
-- every query term's postings (1-3 ms per query at 100,000 chunks).
CREATE INDEX chunk_terms_rank_idx ON chunk_terms (lexeme, impact DESC, chunk_id);
DROP INDEX chunk_terms_impact_idx;
