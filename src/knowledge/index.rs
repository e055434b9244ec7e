//! BM25 index maintenance: each chunk's postings (`chunk_terms`) and the corpus statistics
//! (`lexeme_df`, `fulltext_stats`) that `search` reads, kept current by ingest.

use anyhow::Context;
use sqlx::PgPool;

/// Postings of the chunks in `$1` from their `tsv`: heading lexemes count twice in tf,
/// lengths are measured the same way (`tsv_len`), against the corpus mean length.
const INDEX_TERMS_SQL: &str = "INSERT INTO chunk_terms (lexeme, chunk_id, impact)
     SELECT u.lexeme, c.id,
            sentinel_bm25_impact(
                (coalesce(cardinality(u.positions), 1)
                   + coalesce(cardinality(array_positions(u.weights, 'A')), 0))::real,
                greatest(c.tsv_len, 1)::real,
                coalesce((SELECT avg_len FROM fulltext_stats), 64)::real)
     FROM chunks c, unnest(c.tsv) u WHERE c.id = ANY($1)
     ON CONFLICT (lexeme, chunk_id) DO UPDATE SET impact = EXCLUDED.impact";

/// Chunks whose postings one statement writes (bounded so a large corpus is not one
/// statement of tens of millions of rows).
const TERMS_BATCH: usize = 20_000;

/// Writes (or overwrites) the BM25 postings of `ids` from their `tsv`, against the current
/// corpus mean length, in batches.
pub async fn write_terms(conn: &mut sqlx::PgConnection, ids: &[String]) -> anyhow::Result<()> {
    for batch in ids.chunks(TERMS_BATCH) {
        sqlx::query(INDEX_TERMS_SQL)
            .bind(batch)
            .execute(&mut *conn)
            .await
            .context("Failed to index chunk terms")?;
    }
    Ok(())
}

/// Rewrites the BM25 postings of `ids` from their `tsv` (after their text changed).
pub async fn index_terms(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ids: &[String],
) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM chunk_terms WHERE chunk_id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    write_terms(tx, ids).await
}

/// Recomputes `lexeme_df` from the chunks; run after an ingest changes anything.
pub async fn refresh_lexeme_stats(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    // One refresher at a time across replicas.
    sqlx::query("SELECT pg_advisory_xact_lock(7315002)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM lexeme_df")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO lexeme_df (lexeme, df) SELECT word, ndoc FROM ts_stat('SELECT tsv FROM chunks')",
    )
    .execute(&mut *tx)
    .await
    .context("Failed to refresh lexeme statistics")?;
    sqlx::query(
        "INSERT INTO fulltext_stats (id, chunks, avg_len)
         SELECT true, count(*), greatest(coalesce(avg(tsv_len), 1), 1) FROM chunks
         ON CONFLICT (id) DO UPDATE SET chunks = EXCLUDED.chunks, avg_len = EXCLUDED.avg_len",
    )
    .execute(&mut *tx)
    .await
    .context("Failed to refresh corpus statistics")?;
    let (avg_len, impact_avg_len): (f64, Option<f64>) =
        sqlx::query_as("SELECT avg_len, impact_avg_len FROM fulltext_stats")
            .fetch_one(&mut *tx)
            .await?;
    if impacts_stale(avg_len, impact_avg_len) {
        reweigh_all_terms(&mut tx).await?;
        sqlx::query("UPDATE fulltext_stats SET impact_avg_len = avg_len")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    // Fresh planner statistics: right after a first ingest the tables look empty to the
    // planner, and its plans are slow.
    sqlx::query("ANALYZE chunks, chunk_terms")
        .execute(pool)
        .await
        .context("Failed to analyze the knowledge tables")?;
    Ok(())
}

/// Relative drift of the corpus mean length past which stored impacts are recomputed.
/// BM25 divides each chunk's length by the mean: a few percent moves every score about
/// alike, and recomputing a large corpus is not free.
pub const IMPACT_DRIFT: f64 = 0.05;

/// Whether impacts written against `written` (NULL: unknown) are stale for mean `avg_len`.
pub fn impacts_stale(avg_len: f64, written: Option<f64>) -> bool {
    match written {
        None => true,
        Some(w) => (avg_len - w).abs() > IMPACT_DRIFT * avg_len.max(1.0),
    }
}

/// Recomputes every chunk's postings against the current corpus mean.
async fn reweigh_all_terms(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> anyhow::Result<()> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM chunks ORDER BY id")
        .fetch_all(&mut **tx)
        .await?;
    write_terms(tx, &ids).await
}

#[cfg(test)]
mod tests {
    use super::impacts_stale;

    #[test]
    fn impacts_are_recomputed_when_the_mean_length_drifts() {
        assert!(impacts_stale(54.5, None), "unknown mean: recompute");
        assert!(
            impacts_stale(54.5, Some(64.0)),
            "the new-database default is 17% off"
        );
        assert!(!impacts_stale(54.5, Some(54.5)));
        assert!(!impacts_stale(54.5, Some(53.0)), "under 5%: keep");
        assert!(impacts_stale(100.0, Some(94.0)));
    }
}
