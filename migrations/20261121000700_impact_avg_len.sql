-- The mean chunk length the stored BM25 impacts (`chunk_terms.impact`) were computed
-- against. Ingest writes impacts against the mean known at that moment (a default on a new
-- database); when the corpus mean has since moved by more than a few percent, the stats
-- refresh recomputes every impact and records the mean here. NULL: unknown, recompute.
ALTER TABLE fulltext_stats ADD COLUMN impact_avg_len float8;
