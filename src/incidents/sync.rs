//! Bringing Slack up to date with incident state.
//!
//! A replica leases one dirty incident (or digest) at a time with `FOR UPDATE SKIP LOCKED`
//! and a `sync_until` deadline, makes its Slack calls without holding any row lock, and
//! records each result (root `ts` first of all) as soon as it has it. Only the lease holder
//! posts, so two replicas never post two roots for one incident. 429s and transient errors
//! are retried until Slack accepts the call.

use std::time::Duration;

use anyhow::Context;
use sqlx::Row;

use super::engine::Engine;
use super::view::load_row;
use crate::alerts::model::Status;
use crate::alerts::notify::{Message, NotifyError};
use crate::alerts::render::{self, DigestEntry};
use crate::alerts::Severity;
use crate::knowledge::SearchRequest;
use crate::retry::Backoff;

/// A lease longer than any sane Slack retry sequence; a crashed replica's work is
/// picked up after it expires.
const LEASE_SECS: f64 = 300.0;
/// After a failed sync, wait this long before trying the same incident again.
const FAILED_SECS: f64 = 5.0;
/// Attempts for one Slack call (429s wait as long as Slack says).
const ATTEMPTS: u32 = 200;

/// Retries a Slack call through 429s and transient errors.
async fn call<T, F, Fut>(mut op: F) -> Result<T, NotifyError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, NotifyError>>,
{
    let backoff = Backoff {
        attempts: ATTEMPTS,
        base: Duration::from_millis(100),
        max: Duration::from_secs(10),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(e @ NotifyError::Fatal(_)) => return Err(e),
            Err(e) if attempt >= ATTEMPTS => return Err(e),
            Err(NotifyError::RateLimited(d)) => {
                let jitter = Duration::from_millis(rand::random::<u64>() % 50);
                tokio::time::sleep(d + jitter).await;
            }
            Err(NotifyError::Transient(_)) => {
                tokio::time::sleep(backoff.delay(attempt.min(8))).await;
            }
        }
    }
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
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
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

async fn note(engine: &Engine, id: i64, kind: &str, detail: &str) -> anyhow::Result<()> {
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
        Ok(()) => release(engine, "incidents", id, Some(version)).await,
        Err(SyncError::Slack(NotifyError::Fatal(reason))) => {
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
enum SyncError {
    #[error(transparent)]
    Slack(#[from] NotifyError),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

async fn sync_incident_calls(engine: &Engine, id: i64) -> Result<(), SyncError> {
    let Some((row, view)) = load_row(&engine.pool, id).await? else {
        return Ok(());
    };
    if row.digest_id.is_some() {
        // Listed in the storm digest instead of a thread of its own.
        return Ok(());
    }
    let n = &engine.notifier;
    let ch = row.channel.as_str();
    let root = match (&row.root_ts, row.root_is_ours) {
        (None, _) => {
            let msg = render::root_message(&view);
            let ts = call(|| n.post_root(ch, &msg)).await?;
            set(engine, id, "root_ts", &ts).await?;
            note(engine, id, "posted", "root message posted").await?;
            ts
        }
        (Some(ts), true) => {
            let msg = render::root_message(&view);
            call(|| n.update_root(ch, ts, &msg)).await?;
            ts.clone()
        }
        (Some(ts), false) => ts.clone(),
    };
    let mut reply_ts = row.runbook_reply_ts.clone();
    // With a diagnoser, one redacted search serves both the runbook reply and the diagnosis.
    let mut found: Option<(crate::diagnosis::Subject, Vec<crate::knowledge::Hit>)> = None;
    if let (Some(d), false) = (&engine.diagnoser, row.diagnosed) {
        let subject = super::diagnose::subject(&engine.pool, id, &view).await?;
        let hits = d.hits_for(&subject).await;
        found = Some((subject, hits));
    }
    if reply_ts.is_none() && (engine.runbooks.is_some() || engine.diagnoser.is_some()) {
        let drafting = engine.diagnoser.is_some();
        let base = engine.config.runbook_base_url.as_deref();
        let k = engine.config.runbook_hits;
        let msg = match (&found, &engine.runbooks) {
            (Some((_, hits)), _) => {
                render::runbook_reply(&hits[..hits.len().min(k)], base, drafting)
            }
            (None, Some(kb)) => {
                let summary = view.summary.clone().unwrap_or_default();
                let runbook_url = view
                    .links
                    .iter()
                    .find(|l| l.kind == "runbook")
                    .map(|l| l.url.clone());
                let hits = kb
                    .search(&SearchRequest {
                        text: format!("{} {summary}", view.name),
                        alert: Some(view.name.clone()),
                        runbook_url,
                        k,
                    })
                    .await?;
                render::runbook_reply(&hits, base, drafting)
            }
            (None, None) => render::drafting_reply(&view.name),
        };
        let ts = call(|| n.reply(ch, &root, &msg)).await?;
        set(engine, id, "runbook_reply_ts", &ts).await?;
        reply_ts = Some(ts);
    }
    if let (Some(d), Some(reply), Some((subject, hits))) = (&engine.diagnoser, &reply_ts, found) {
        let outcome = d.diagnose_hits(&subject, hits).await;
        let msg = Message {
            text: outcome.message.text,
            blocks: Some(outcome.message.blocks),
        };
        call(|| n.update_root(ch, reply, &msg)).await?;
        sqlx::query("UPDATE incidents SET diagnosed_at = clock_timestamp() WHERE id = $1")
            .bind(id)
            .execute(&engine.pool)
            .await
            .context("Failed to record the diagnosis")?;
        let kind = match outcome.draft {
            crate::diagnosis::Draft::Llm(_) => "LLM draft".to_string(),
            crate::diagnosis::Draft::Fallback(f) => {
                format!("runbook fallback ({})", f.reason.explain())
            }
        };
        note(engine, id, "diagnosed", &kind).await?;
    }
    match (view.status, row.announced_status) {
        (Status::Resolved, Status::Firing) => {
            call(|| n.react(ch, &root, "white_check_mark")).await?;
            let msg = render::resolution_reply(&view);
            call(|| n.reply(ch, &root, &msg)).await?;
            set(engine, id, "announced_status", "resolved").await?;
        }
        (Status::Firing, Status::Resolved) => {
            let msg = render::reopen_reply(&view);
            call(|| n.reply(ch, &root, &msg)).await?;
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
        None => match call(|| n.post_root(&channel, &msg)).await {
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
        Some(ts) => call(|| n.update_root(&channel, ts, &msg)).await,
    };
    match result {
        Ok(()) => release(engine, "storm_digests", id, Some(version)).await,
        Err(NotifyError::Fatal(reason)) => {
            tracing::warn!(digest.id = id, %reason, "Slack refused the storm digest");
            release(engine, "storm_digests", id, Some(version)).await
        }
        Err(e) => {
            tracing::warn!(digest.id = id, error = %e, "digest sync failed; will retry");
            release(engine, "storm_digests", id, None).await
        }
    }
}
