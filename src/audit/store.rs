//! Appending to and reading `audit_events`.
//!
//! An append runs in the caller's transaction: it takes a transaction-scoped advisory lock
//! (so appenders on every replica queue up and the chain stays linear), reads the head,
//! and inserts `head + 1` linked to it. The primary key on `seq` backs this up: two rows
//! can never claim the same place, whatever the caller's isolation level.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Executor, PgConnection, PgPool, Row};

use super::chain::{self, GENESIS};
use super::{AuditKey, Event, Head, StoredEvent};

/// Advisory lock key of the chain (arbitrary but fixed; other locks use 7_315_0xx / 7_315_200).
pub const APPEND_LOCK: i64 = 7_315_300;

/// The lock, then the head as the last commit left it (each statement of a simple query
/// takes its own snapshot, so the second one sees the append that held the lock before):
/// one round trip instead of two while other appenders wait.
const LOCK_THEN_HEAD: &str = "SELECT 1 FROM (SELECT pg_advisory_xact_lock(7315300)) l;
SELECT coalesce(h.seq, 0) AS seq, coalesce(h.hash, '0000000000000000000000000000000000000000000000000000000000000000') AS hash,
       clock_timestamp() AS at
FROM (SELECT 1) one LEFT JOIN LATERAL
     (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) h ON true";

/// [`LOCK_THEN_HEAD`] for [`append_unflushed`]: this transaction's commit will not wait for
/// the disk.
const UNFLUSHED_LOCK_THEN_HEAD: &str = concat!(
    "SET LOCAL synchronous_commit = off;\n",
    "SELECT 1 FROM (SELECT pg_advisory_xact_lock(7315300)) l;
SELECT coalesce(h.seq, 0) AS seq, coalesce(h.hash, '0000000000000000000000000000000000000000000000000000000000000000') AS hash,
       clock_timestamp() AS at
FROM (SELECT 1) one LEFT JOIN LATERAL
     (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) h ON true"
);

/// The columns of a row, in [`from_row`]'s order.
pub(crate) const COLUMNS: &str = "seq, at, actor_id, actor_name, kind, incident_id, proposal_id, action, argv, outcome, detail, prev_hash, hash";

/// Appends `event` in the caller's transaction (call it as `append(&mut *tx, ...)`) and
/// returns the new head. Text is redacted first. The chain stays locked until that
/// transaction ends, so append last, just before committing; if the append fails, the
/// transaction must not commit and the action must not run (fail closed). Outside a
/// transaction the lock would end with its own statement: the primary key still refuses a
/// second row at one `seq` (no fork), but concurrent appends could then fail.
///
/// The caller's commit waits for the disk as the session is configured (synchronous by
/// default), with the chain locked meanwhile: a few hundred appends per second on a disk
/// that flushes in 2 ms. [`append_unflushed`] trades that for throughput.
pub async fn append(conn: &mut PgConnection, key: &AuditKey, event: Event) -> anyhow::Result<Head> {
    insert(conn, key, event, false).await
}

/// As [`append`], but the transaction commits without waiting for its WAL flush
/// (`SET LOCAL synchronous_commit = off`), so the lock is released before the disk flush
/// and appenders are not serialised behind it. WAL is flushed in order, so a crash can only
/// lose a suffix of the chain, never a row in its middle. The change is durable only once
/// [`wait_durable`] has returned after the commit: call it before acting on the change
/// (running a command, telling Slack).
pub async fn append_unflushed(
    conn: &mut PgConnection,
    key: &AuditKey,
    event: Event,
) -> anyhow::Result<Head> {
    insert(conn, key, event, true).await
}

/// Returns once everything committed before the call is on disk: a transaction that
/// commits synchronously flushes the WAL up to its commit record, which follows every
/// earlier commit. Concurrent callers share one flush (group commit).
pub async fn wait_durable(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_current_xact_id()::text")
        .execute(pool)
        .await
        .context("Failed to flush the audit log")?;
    Ok(())
}

async fn insert(
    conn: &mut PgConnection,
    key: &AuditKey,
    event: Event,
    unflushed: bool,
) -> anyhow::Result<Head> {
    let event = chain::redact(event);
    let detail = chain::canonical_json(&event.detail);
    // A plain &str (no arguments) goes as one simple query: all statements, one round trip.
    let sql = if unflushed {
        UNFLUSHED_LOCK_THEN_HEAD
    } else {
        LOCK_THEN_HEAD
    };
    let rows = Executor::fetch_all(&mut *conn, sql)
        .await
        .context("Failed to lock the audit chain")?;
    let head = rows
        .last()
        .context("the audit chain head query returned nothing")?;
    let prev_seq: i64 = head.try_get("seq")?;
    let prev_hash: String = head.try_get("hash")?;
    let at: DateTime<Utc> = head.try_get("at")?;
    let prev = chain::decode_hash(&prev_hash).with_context(|| {
        format!("the audit head (seq {prev_seq}) has a malformed hash; run `sentinel audit verify`")
    })?;
    let mut row = StoredEvent {
        seq: prev_seq + 1,
        at,
        actor: event.actor,
        kind: event.kind.as_str().to_string(),
        incident_id: event.incident_id,
        proposal_id: event.proposal_id,
        action: event.action,
        argv: event.argv,
        outcome: event.outcome,
        detail,
        prev_hash,
        hash: String::new(),
    };
    row.hash = hex::encode(chain::expected_hash(key, &prev, &row));
    let (actor_id, actor_name) = row.actor.parts();
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor_id, actor_name, kind, incident_id, proposal_id,
                                   action, argv, outcome, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(row.seq)
    .bind(row.at)
    .bind(actor_id)
    .bind(actor_name)
    .bind(&row.kind)
    .bind(row.incident_id)
    .bind(row.proposal_id)
    .bind(&row.action)
    .bind(&row.argv)
    .bind(&row.outcome)
    .bind(&row.detail)
    .bind(&row.prev_hash)
    .bind(&row.hash)
    .execute(&mut *conn)
    .await
    .context("Failed to write the audit row")?;
    Ok(Head {
        seq: row.seq,
        hash: row.hash,
    })
}

/// The last row's `(seq, hash)`, `None` for an empty log.
pub async fn head(pool: &PgPool) -> anyhow::Result<Option<Head>> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(pool)
            .await
            .context("Failed to read the audit head")?;
    Ok(row.map(|(seq, hash)| Head { seq, hash }))
}

/// The last `limit` events, of one incident or of all, oldest first (`/sentinel audit`).
pub async fn recent(
    pool: &PgPool,
    incident_id: Option<i64>,
    limit: i64,
) -> anyhow::Result<Vec<StoredEvent>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_events
         WHERE $1::bigint IS NULL OR incident_id = $1
         ORDER BY seq DESC LIMIT $2"
    ))
    .bind(incident_id)
    .bind(limit.max(0))
    .fetch_all(pool)
    .await
    .context("Failed to read the audit log")?;
    let mut events = rows
        .iter()
        .map(from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    events.reverse();
    Ok(events)
}

/// Rows with `seq > after`, in order, at most `limit`, optionally only from `since` on and
/// of one incident: the batches `verify` and `export` stream the log in.
pub(crate) async fn batch_after(
    pool: &PgPool,
    after: i64,
    limit: i64,
    since: Option<DateTime<Utc>>,
    incident_id: Option<i64>,
) -> anyhow::Result<Vec<StoredEvent>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_events
         WHERE seq > $1 AND ($2::timestamptz IS NULL OR at >= $2)
           AND ($3::bigint IS NULL OR incident_id = $3)
         ORDER BY seq LIMIT $4"
    ))
    .bind(after)
    .bind(since)
    .bind(incident_id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("Failed to read the audit log")?;
    rows.iter().map(from_row).collect()
}

pub(crate) fn from_row(r: &PgRow) -> anyhow::Result<StoredEvent> {
    Ok(StoredEvent {
        seq: r.try_get(0)?,
        at: r.try_get(1)?,
        actor: super::Actor::from_parts(r.try_get(2)?, r.try_get(3)?),
        kind: r.try_get(4)?,
        incident_id: r.try_get(5)?,
        proposal_id: r.try_get(6)?,
        action: r.try_get(7)?,
        argv: r.try_get(8)?,
        outcome: r.try_get(9)?,
        detail: r.try_get(10)?,
        prev_hash: r.try_get(11)?,
        hash: r.try_get(12)?,
    })
}

/// The head of an empty log.
pub fn genesis() -> Head {
    Head {
        seq: 0,
        hash: GENESIS.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_query_takes_the_chain_lock_and_genesis() {
        for sql in [LOCK_THEN_HEAD, UNFLUSHED_LOCK_THEN_HEAD] {
            assert!(sql.contains(&format!("pg_advisory_xact_lock({APPEND_LOCK})")));
            assert!(sql.contains(GENESIS));
            assert!(sql.ends_with(LOCK_THEN_HEAD));
        }
    }
}
