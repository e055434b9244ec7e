//! Bringing Slack up to date with incident state.
//!
//! A replica leases one dirty incident (or digest) at a time with `FOR NO KEY UPDATE SKIP
//! LOCKED` (the diagnosis pool's event inserts take key-share locks on the same rows)
//! and a `sync_until` deadline, makes its Slack calls without holding any row lock, and
//! records each result (root `ts` first of all) as soon as it has it. Only the lease holder
//! posts, so two replicas never post two roots for one incident. 429s and transient errors
//! are retried until Slack accepts the call. Nothing here waits for an LLM: the runbook
//! reply, once recorded, is the diagnosis pool's work (`drafts`).

use std::time::Duration;

use anyhow::Context;
use sqlx::Row;

use super::drafts::Prepared;
use super::engine::Engine;
use super::render::{self, DigestEntry, IncidentView};
use super::view::load_row;
use super::view::IncidentRow;
use crate::alerts::model::Status;
use crate::alerts::Severity;
use crate::knowledge::Hit;
use crate::retry::Backoff;
use crate::slack::PortError;

/// A lease longer than any sane Slack retry sequence; a crashed replica's work is
/// picked up after it expires.
pub(super) const LEASE_SECS: f64 = 300.0;
/// After a failed sync, wait this long before trying the same incident again.
pub(super) const FAILED_SECS: f64 = 5.0;
/// Slack posts are retried until Slack accepts them: 429s wait as long as Slack says.
const POSTS: Backoff = Backoff {
    attempts: 200,
    base: Duration::from_millis(100),
    max: Duration::from_secs(10),
};

/// Retries a Slack call through 429s and transient errors.
pub(super) async fn call<T, F, Fut>(op: F) -> Result<T, PortError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PortError>>,
{
    POSTS.run(op, PortError::verdict).await
}

/// Syncs one dirty digest or incident; `false` when there is nothing to do.
pub(crate) async fn sync_next(engine: &Engine) -> anyhow::Result<bool> {
    if let Some((id, version)) = claim(engine, "storm_digests").await? {
        sync_digest(engine, id, version).await?;
        return Ok(true);
    }
    if let Some((id, version)) = claim(engine, "incidents").await? {
        sync_incident(engine, id, version).await?;
        return Ok(true);
    }
    Ok(false)
}

async fn claim(engine: &Engine, table: &str) -> anyhow::Result<Option<(i64, i64)>> {
    // `table` is one of two literals above: no injection surface.
    let sql = format!(
        "UPDATE {table} SET sync_owner = $1, sync_until = clock_timestamp() + make_interval(secs => $2)
         WHERE id = (SELECT id FROM {table}
                     WHERE shown_version < version
                       AND (sync_until IS NULL OR sync_until < clock_timestamp())
                     ORDER BY id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED)
         RETURNING id, version"
    );
    let row = sqlx::query(&sql)
        .bind(engine.owner)
        .bind(LEASE_SECS)
        .fetch_optional(&engine.pool)
        .await
        .with_context(|| format!("Failed to claim work in {table}"))?;
    Ok(row.map(|r| (r.get("id"), r.get("version"))))
}

/// Ends a lease: marks `version` shown on success, or backs off on failure.
async fn release(engine: &Engine, table: &str, id: i64, shown: Option<i64>) -> anyhow::Result<()> {
    let sql = format!(
        "UPDATE {table} SET shown_version = greatest(shown_version, coalesce($3, shown_version)),
             sync_owner = NULL,
             sync_until = CASE WHEN $3 IS NULL THEN clock_timestamp() + make_interval(secs => $4) END
         WHERE id = $1 AND sync_owner = $2"
    );
    sqlx::query(&sql)
        .bind(id)
        .bind(engine.owner)
        .bind(shown)
        .bind(FAILED_SECS)
        .execute(&engine.pool)
        .await
        .with_context(|| format!("Failed to release the {table} lease"))?;
    Ok(())
}

async fn set(engine: &Engine, id: i64, column: &str, value: &str) -> anyhow::Result<()> {
    // `column` is a literal from this file.
    sqlx::query(&format!("UPDATE incidents SET {column} = $2 WHERE id = $1"))
        .bind(id)
        .bind(value)
        .execute(&engine.pool)
        .await
        .with_context(|| format!("Failed to record {column}"))?;
    Ok(())
}

pub(super) async fn note(engine: &Engine, id: i64, kind: &str, detail: &str) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO incident_events (incident_id, kind, detail) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(kind)
        .bind(detail)
        .execute(&engine.pool)
        .await?;
    Ok(())
}

async fn sync_incident(engine: &Engine, id: i64, version: i64) -> anyhow::Result<()> {
    match sync_incident_calls(engine, id).await {
        Ok(replied) => {
            release(engine, "incidents", id, Some(version)).await?;
            if replied {
                // Now, not at the reply: until this lease is released, the row is locked
                // now and then and a diagnosis worker's claim would skip it.
                engine.diagnose_wake.notify_waiters();
            }
            Ok(())
        }
        Err(SyncError::Slack(PortError::Fatal(reason))) => {
            // Retrying cannot help (channel gone, bot not invited): record it and move on.
            tracing::warn!(incident.id = id, %reason, "Slack refused an incident update");
            note(engine, id, "slack_error", &reason).await?;
            release(engine, "incidents", id, Some(version)).await
        }
        Err(e) => {
            tracing::warn!(incident.id = id, error = %e, "incident sync failed; will retry");
            release(engine, "incidents", id, None).await
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(super) enum SyncError {
    #[error(transparent)]
    Slack(#[from] PortError),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

/// Brings one incident's thread up to date; `true` when it posted the runbook reply (the
/// diagnosis pool's cue).
async fn sync_incident_calls(engine: &Engine, id: i64) -> Result<bool, SyncError> {
    let Some((row, view)) = load_row(&engine.pool, id).await? else {
        return Ok(false);
    };
    if row.digest_id.is_some() {
        // Listed in the storm digest instead of a thread of its own.
        return Ok(false);
    }
    let root = ensure_root(engine, id, &row, &view).await?;
    let mut replied = false;
    if let (Some(d), None) = (&engine.diagnoser, &row.runbook_reply_ts) {
        let subject = super::diagnose::subject(&engine.pool, id, &view).await?;
        let hits = d.hits_for(&subject).await;
        let k = engine.config.runbook_hits.min(hits.len());
        let shown = hits[..k].to_vec();
        // The diagnosis pool edits the reply into the diagnosis: one search serves both.
        engine.handoff.put(id, Prepared { subject, hits });
        post_runbook_reply(engine, id, &row.channel, &root, &shown).await?;
        replied = true;
    }
    announce_status(engine, id, &row, &view, &root).await?;
    Ok(replied)
}

/// Posts the root message (or edits ours); returns its `ts`. A root a tool posted (an
/// alert message in a watched channel) is left as it is.
async fn ensure_root(
    engine: &Engine,
    id: i64,
    row: &IncidentRow,
    view: &IncidentView,
) -> Result<String, SyncError> {
    let (n, ch) = (&engine.notifier, row.channel.as_str());
    match (&row.root_ts, row.root_is_ours) {
        (None, _) => {
            let msg = render::root_message(view);
            let ts = call(|| n.post(ch, &msg)).await?;
            set(engine, id, "root_ts", &ts).await?;
            note(engine, id, "posted", "root message posted").await?;
            Ok(ts)
        }
        (Some(ts), true) => {
            let msg = render::root_message(view);
            call(|| n.update(ch, ts, &msg)).await?;
            Ok(ts.clone())
        }
        (Some(ts), false) => Ok(ts.clone()),
    }
}

/// The thread's first reply: the best runbook sections (`hits`), saying a diagnosis is on
/// its way.
async fn post_runbook_reply(
    engine: &Engine,
    id: i64,
    channel: &str,
    root: &str,
    hits: &[Hit],
) -> Result<(), SyncError> {
    let base = engine.config.runbook_base_url.as_deref();
    let msg = render::runbook_reply(hits, base, true);
    let ts = call(|| engine.notifier.reply(channel, root, &msg)).await?;
    set(engine, id, "runbook_reply_ts", &ts).await?;
    Ok(())
}

/// Resolution and reopen replies (and the ✅ reaction), once per change of status.
async fn announce_status(
    engine: &Engine,
    id: i64,
    row: &IncidentRow,
    view: &IncidentView,
    root: &str,
) -> Result<(), SyncError> {
    let (n, ch) = (&engine.notifier, row.channel.as_str());
    match (view.status, row.announced_status) {
        (Status::Resolved, Status::Firing) => {
            call(|| n.react(ch, root, "white_check_mark")).await?;
            let msg = render::resolution_reply(view);
            call(|| n.reply(ch, root, &msg)).await?;
            set(engine, id, "announced_status", "resolved").await?;
        }
        (Status::Firing, Status::Resolved) => {
            let msg = render::reopen_reply(view);
            call(|| n.reply(ch, root, &msg)).await?;
            set(engine, id, "announced_status", "firing").await?;
        }
        _ => {}
    }
    Ok(())
}

async fn sync_digest(engine: &Engine, id: i64, version: i64) -> anyhow::Result<()> {
    let r = sqlx::query("SELECT channel, root_ts, opened_at FROM storm_digests WHERE id = $1")
        .bind(id)
        .fetch_one(&engine.pool)
        .await?;
    let channel: String = r.get("channel");
    let root_ts: Option<String> = r.get("root_ts");
    let entries: Vec<DigestEntry> = sqlx::query(
        "SELECT i.id, i.alertname, i.status, i.severity,
                (SELECT count(*) FROM incident_alerts a WHERE a.incident_id = i.id) AS alerts
         FROM incidents i WHERE i.digest_id = $1 ORDER BY i.id",
    )
    .bind(id)
    .fetch_all(&engine.pool)
    .await?
    .iter()
    .map(|r| DigestEntry {
        id: r.get("id"),
        name: r.get("alertname"),
        status: Status::parse(r.get("status")).unwrap_or(Status::Firing),
        severity: Severity::parse(r.get("severity")),
        alerts: r.get::<i64, _>("alerts") as usize,
    })
    .collect();
    let msg = render::storm_digest(&entries, r.get("opened_at"));
    let n = &engine.notifier;
    let result = match &root_ts {
        None => match call(|| n.post(&channel, &msg)).await {
            Ok(ts) => {
                sqlx::query("UPDATE storm_digests SET root_ts = $2 WHERE id = $1")
                    .bind(id)
                    .bind(&ts)
                    .execute(&engine.pool)
                    .await?;
                Ok(())
            }
            Err(e) => Err(e),
        },
        Some(ts) => call(|| n.update(&channel, ts, &msg)).await,
    };
    match result {
        Ok(()) => release(engine, "storm_digests", id, Some(version)).await,
        Err(PortError::Fatal(reason)) => {
            tracing::warn!(digest.id = id, %reason, "Slack refused the storm digest");
            release(engine, "storm_digests", id, Some(version)).await
        }
        Err(e) => {
            tracing::warn!(digest.id = id, error = %e, "digest sync failed; will retry");
            release(engine, "storm_digests", id, None).await
        }
    }
}
