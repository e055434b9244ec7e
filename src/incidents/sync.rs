//! Bringing Slack up to date with incident state.
//!
//! A replica leases one dirty incident (or digest) at a time with `FOR NO KEY UPDATE SKIP
//! LOCKED` (the diagnosis pool's event inserts take key-share locks on the same rows) and
//! a short `sync_until` deadline it renews while it works (`leased`), makes its Slack calls
//! without holding any row lock, and records each result (root `ts` first of all) as soon
//! as it has it. Only the lease holder posts; a replica that dies leaves its work to the
//! others within `LEASE_SECS`. A post that must exist once (root, runbook reply, resolution
//! or reopen reply, digest) carries a `Marker` in its Slack metadata and its attempt is
//! recorded before the call: after a crash between Slack accepting it and its `ts` being
//! recorded, the next attempt finds it (`SlackPort::find_marked`) instead of posting it
//! twice. 429s and transient errors are retried until Slack accepts the call. Nothing here
//! waits for an LLM: the runbook reply, once recorded, is the diagnosis pool's work
//! (`drafts`).

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use sqlx::Row;
use tracing::Instrument;

use super::drafts::Prepared;
use super::engine::Engine;
use super::render::{self, DigestEntry, IncidentView};
use super::view::load_row;
use super::view::IncidentRow;
use crate::alerts::model::Status;
use crate::alerts::Severity;
use crate::knowledge::Hit;
use crate::retry::Backoff;
use crate::slack::message::Marker;
use crate::slack::PortError;

/// A lease, renewed every third of it while the work goes on (`leased`): a replica that
/// dies leaves its incidents to the others within this long.
pub(super) const LEASE_SECS: f64 = 15.0;
/// After a failed sync, wait this long before trying the same incident again.
pub(super) const FAILED_SECS: f64 = 5.0;
/// Slack posts are retried until Slack accepts them: 429s wait as long as Slack says.
const POSTS: Backoff = Backoff {
    attempts: 200,
    base: Duration::from_millis(100),
    max: Duration::from_secs(10),
};

/// Markers of the posts that must exist once (`slack::message::Marker`).
const ROOT_MARK: &str = "sentinel_incident_root";
const REPLY_MARK: &str = "sentinel_runbook_reply";
const ANNOUNCE_MARK: &str = "sentinel_status_reply";
const DIGEST_MARK: &str = "sentinel_storm_digest";

/// Records that a post is about to be attempted (before the call: a crash after Slack
/// accepted it leaves this behind, and the next attempt looks for the post first).
async fn attempt(engine: &Engine, table: &str, id: i64, column: &str) -> anyhow::Result<()> {
    // `table` and `column` are literals from this file.
    sqlx::query(&format!(
        "UPDATE {table} SET {column} = clock_timestamp() WHERE id = $1"
    ))
    .bind(id)
    .execute(&engine.pool)
    .await
    .with_context(|| format!("Failed to record {column}"))?;
    Ok(())
}

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
    if let Some((id, version, _)) = claim(engine, "storm_digests").await? {
        leased(engine, SYNC_DIGEST, id, sync_digest(engine, id, version))
            .instrument(tracing::info_span!("digest", digest_id = id))
            .await?;
        return Ok(true);
    }
    if let Some((id, version, request_id)) = claim(engine, "incidents").await? {
        leased(
            engine,
            SYNC_INCIDENT,
            id,
            sync_incident(engine, id, version),
        )
        .instrument(incident_span(id, request_id.as_deref()))
        .await?;
        return Ok(true);
    }
    Ok(false)
}

/// The span an incident's work runs in: every line logged in it (Slack calls, searches,
/// the LLM) carries the incident and the requests that last changed it.
pub(super) fn incident_span(id: i64, request_id: Option<&str>) -> tracing::Span {
    tracing::info_span!(
        "incident",
        incident_id = id,
        request_id = request_id.unwrap_or("")
    )
}

/// Claims the oldest changed row of `table`: its id, version and (incidents only) the
/// requests that last changed it.
async fn claim(engine: &Engine, table: &str) -> anyhow::Result<Option<(i64, i64, Option<String>)>> {
    let request_id = if table == "incidents" {
        "request_id"
    } else {
        "NULL::text AS request_id"
    };
    // `table` is one of two literals above: no injection surface.
    let sql = format!(
        "UPDATE {table} SET sync_owner = $1, sync_until = clock_timestamp() + make_interval(secs => $2)
         WHERE id = (SELECT id FROM {table}
                     WHERE shown_version < version
                       AND (sync_until IS NULL OR sync_until < clock_timestamp())
                     ORDER BY id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED)
         RETURNING id, version, {request_id}"
    );
    let row = sqlx::query(&sql)
        .bind(engine.owner)
        .bind(LEASE_SECS)
        .fetch_optional(&engine.pool)
        .await
        .with_context(|| format!("Failed to claim work in {table}"))?;
    Ok(row.map(|r| (r.get("id"), r.get("version"), r.get("request_id"))))
}

/// Which lease columns of which table a worker holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    pub table: &'static str,
    pub owner: &'static str,
    pub until: &'static str,
}

/// Sync leases on incidents and digests.
const SYNC_INCIDENT: Lease = Lease {
    table: "incidents",
    owner: "sync_owner",
    until: "sync_until",
};
const SYNC_DIGEST: Lease = Lease {
    table: "storm_digests",
    ..SYNC_INCIDENT
};

/// Runs `work` while renewing this replica's `lease` on row `id`.
pub(super) async fn leased<T>(
    engine: &Engine,
    lease: Lease,
    id: i64,
    work: impl Future<Output = T>,
) -> T {
    let Lease {
        table,
        owner,
        until,
    } = lease;
    // The names are literals of this module and `drafts`: no injection surface.
    let sql = format!(
        "UPDATE {table} SET {until} = clock_timestamp() + make_interval(secs => $3)
         WHERE id = $1 AND {owner} = $2"
    );
    let renew = async {
        loop {
            tokio::time::sleep(Duration::from_secs_f64(LEASE_SECS / 3.0)).await;
            let renewed = sqlx::query(&sql)
                .bind(id)
                .bind(engine.owner)
                .bind(LEASE_SECS)
                .execute(&engine.pool)
                .await;
            if let Err(e) = renewed {
                tracing::warn!(%table, %owner, id, error = %e, "cannot renew a lease");
            }
        }
    };
    tokio::select! {
        v = work => v,
        () = renew => unreachable!("renewing never ends"),
    }
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
            tracing::warn!(%reason, "Slack refused an incident update");
            note(engine, id, "slack_error", &reason).await?;
            release(engine, "incidents", id, Some(version)).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "incident sync failed; will retry");
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
        post_runbook_reply(engine, id, &row.channel, &root, row.reply_attempted, &shown).await?;
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
            let marker = Marker::new(ROOT_MARK, id);
            let msg = render::root_message(view).marked(marker.clone());
            let earlier = if row.root_attempted {
                call(|| n.find_marked(ch, None, &row.opened_ts, &marker)).await?
            } else {
                None
            };
            let ts = match earlier {
                Some(ts) => {
                    note(
                        engine,
                        id,
                        "recovered",
                        "found the root an earlier attempt posted",
                    )
                    .await?;
                    call(|| n.update(ch, &ts, &msg)).await?;
                    ts
                }
                None => {
                    attempt(engine, "incidents", id, "root_attempted_at").await?;
                    let ts = call(|| n.post(ch, &msg)).await?;
                    note(engine, id, "posted", "root message posted").await?;
                    tracing::info!(slack.channel = ch, slack.ts = %ts, "incident root posted");
                    ts
                }
            };
            set(engine, id, "root_ts", &ts).await?;
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
    reply_attempted: bool,
    hits: &[Hit],
) -> Result<(), SyncError> {
    let base = engine.config.runbook_base_url.as_deref();
    let marker = Marker::new(REPLY_MARK, id);
    let msg = render::runbook_reply(hits, base, true).marked(marker.clone());
    let n = &engine.notifier;
    let earlier = if reply_attempted {
        call(|| n.find_marked(channel, Some(root), root, &marker)).await?
    } else {
        None
    };
    let ts = match earlier {
        Some(ts) => ts,
        None => {
            attempt(engine, "incidents", id, "reply_attempted_at").await?;
            let ts = call(|| n.reply(channel, root, &msg)).await?;
            tracing::info!(runbooks = hits.len(), "runbook reply posted");
            ts
        }
    };
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
    let (msg, status) = match (view.status, row.announced_status) {
        (Status::Resolved, Status::Firing) => {
            call(|| n.react(ch, root, "white_check_mark")).await?;
            (render::resolution_reply(view), "resolved")
        }
        (Status::Firing, Status::Resolved) => (render::reopen_reply(view), "firing"),
        _ => return Ok(()),
    };
    // One reply per change of status, even across a crash between the post and the record.
    let marker = Marker::new(ANNOUNCE_MARK, format!("{id}:{status}:{}", view.reopened));
    let earlier = if row.announce_attempted.as_deref() == Some(marker.key.as_str()) {
        call(|| n.find_marked(ch, Some(root), root, &marker)).await?
    } else {
        None
    };
    if earlier.is_none() {
        set(engine, id, "announce_attempted", &marker.key).await?;
        let msg = msg.marked(marker.clone());
        call(|| n.reply(ch, root, &msg)).await?;
        tracing::info!(status, "incident status announced");
    }
    set(engine, id, "announced_status", status).await?;
    Ok(())
}

async fn sync_digest(engine: &Engine, id: i64, version: i64) -> anyhow::Result<()> {
    let r = sqlx::query(
        "SELECT channel, root_ts, opened_at, root_attempted_at IS NOT NULL AS attempted
         FROM storm_digests WHERE id = $1",
    )
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
    let marker = Marker::new(DIGEST_MARK, id);
    let msg = render::storm_digest(&entries, r.get("opened_at")).marked(marker.clone());
    let n = &engine.notifier;
    let result = match &root_ts {
        None => {
            let since = super::view::slack_ts(r.get("opened_at"));
            let earlier = if r.get::<bool, _>("attempted") {
                call(|| n.find_marked(&channel, None, &since, &marker)).await
            } else {
                Ok(None)
            };
            let posted = match earlier {
                Ok(Some(ts)) => call(|| n.update(&channel, &ts, &msg)).await.map(|_| ts),
                Ok(None) => {
                    attempt(engine, "storm_digests", id, "root_attempted_at").await?;
                    call(|| n.post(&channel, &msg)).await
                }
                Err(e) => Err(e),
            };
            match posted {
                Ok(ts) => {
                    sqlx::query("UPDATE storm_digests SET root_ts = $2 WHERE id = $1")
                        .bind(id)
                        .bind(&ts)
                        .execute(&engine.pool)
                        .await?;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        Some(ts) => call(|| n.update(&channel, ts, &msg)).await,
    };
    match result {
        Ok(()) => release(engine, "storm_digests", id, Some(version)).await,
        Err(PortError::Fatal(reason)) => {
            tracing::warn!(%reason, "Slack refused the storm digest");
            release(engine, "storm_digests", id, Some(version)).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "digest sync failed; will retry");
            release(engine, "storm_digests", id, None).await
        }
    }
}
