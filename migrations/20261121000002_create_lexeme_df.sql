-- Chunk frequency of every lexeme, refreshed after each ingest. Full-text queries keep only
-- the query's rarest lexemes (highest idf): common words would match most chunks, cost a
-- ts_rank each, and say little about which runbook is meant.
CREATE TABLE lexeme_df (
    lexeme TEXT PRIMARY KEY,
    df     INTEGER NOT NULL
);
