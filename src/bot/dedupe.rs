//! "Never twice": a delivery's effect is claimed in Postgres before it runs, so Slack's
//! redeliveries, a second connection and other replicas sharing the database all lose.

use anyhow::Context;
use sqlx::PgPool;

/// Claims `key`. `true` means this caller inserted the row and must act; `false` means
/// someone already did (or is doing) it.
///
/// The claim is taken before the work: a crash mid-work loses that one effect rather than
/// doubling it (Slack messages cannot be un-posted).
pub async fn claim(pool: &PgPool, key: &str, kind: &str) -> anyhow::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO processed_events (event_key, kind) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(key)
    .bind(kind)
    .execute(pool)
    .await
    .context("Failed to record a processed Slack event")?
    .rows_affected();
    Ok(inserted == 1)
}

/// Deletes claims older than `days` (Slack retries within minutes; a week is plenty).
pub async fn prune(pool: &PgPool, days: i32) -> anyhow::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM processed_events WHERE processed_at < now() - make_interval(days => $1)",
    )
    .bind(days)
    .execute(pool)
    .await
    .context("Failed to prune processed Slack events")?
    .rows_affected())
}
