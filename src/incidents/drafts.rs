//! The diagnosis pool: each incident's runbook reply edited into its diagnosis (LLM draft
//! or runbook fallback), apart from Slack sync, so no root or reply waits for an LLM.
//!
//! Like sync work, a diagnosis is claimed from Postgres: an incident whose runbook reply is
//! posted and whose `diagnosed_at` is not, leased (`diagnose_owner`, `diagnose_until`) with
//! `FOR NO KEY UPDATE SKIP LOCKED`, so replicas share the work and a crashed replica's diagnosis
//! is picked up once its lease, renewed while it works, expires. The edit goes through the same port and retry
//! policy as every Slack post.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use anyhow::Context;
use tracing::Instrument;

use super::engine::Engine;
use super::sync::{call, incident_span, leased, note, Lease, SyncError, FAILED_SECS, LEASE_SECS};
use super::view::load_row;
use crate::diagnosis::{Diagnoser, Draft, Subject};
use crate::knowledge::Hit;
use crate::slack::PortError;

/// Diagnoses one incident; `false` when none is waiting.
pub(crate) async fn diagnose_next(engine: &Engine) -> anyhow::Result<bool> {
    let Some(d) = &engine.diagnoser else {
        return Ok(false);
    };
    let Some(claimed) = claim(engine, LEASE_SECS).await? else {
        return Ok(false);
    };
    let id = claimed.id;
    let span = incident_span(id, claimed.request_id.as_deref());
    async {
        match leased(engine, DIAGNOSIS, id, diagnose(engine, d, &claimed)).await {
            Ok(()) => {}
            Err(SyncError::Slack(PortError::Fatal(reason))) => {
                // The reply is gone (deleted, channel archived): nothing left to edit.
                tracing::warn!(%reason, "Slack refused the diagnosis edit");
                note(engine, id, "slack_error", &reason).await?;
                finish(engine, id).await?;
            }
            Err(e) => {
                tracing::warn!(error = %e, "incident diagnosis failed; will retry");
                release(engine, id, FAILED_SECS).await?;
            }
        }
        Ok(true)
    }
    .instrument(span)
    .await
}

/// The diagnosis lease: short, and renewed while the LLM and Slack are waited for, so a
/// dead replica's diagnoses are taken over within seconds.
const DIAGNOSIS: Lease = Lease {
    table: "incidents",
    owner: "diagnose_owner",
    until: "diagnose_until",
};

/// A leased diagnosis: the incident and the reply to edit.
#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    channel: String,
    runbook_reply_ts: String,
    root_ts: Option<String>,
    request_id: Option<String>,
}

async fn claim(engine: &Engine, lease_secs: f64) -> anyhow::Result<Option<Claimed>> {
    sqlx::query_as(
        "UPDATE incidents SET diagnose_owner = $1,
             diagnose_until = clock_timestamp() + make_interval(secs => $2)
         WHERE id = (SELECT id FROM incidents
                     WHERE runbook_reply_ts IS NOT NULL AND diagnosed_at IS NULL
                       AND (diagnose_until IS NULL OR diagnose_until < clock_timestamp())
                     ORDER BY id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED)
         RETURNING id, channel, runbook_reply_ts, root_ts, request_id",
    )
    .bind(engine.owner)
    .bind(lease_secs)
    .fetch_optional(&engine.pool)
    .await
    .context("Failed to claim a diagnosis")
}

/// Gives the lease back; the diagnosis is tried again after `after_secs`.
async fn release(engine: &Engine, id: i64, after_secs: f64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE incidents SET diagnose_owner = NULL,
             diagnose_until = clock_timestamp() + make_interval(secs => $3)
         WHERE id = $1 AND diagnose_owner = $2",
    )
    .bind(id)
    .bind(engine.owner)
    .bind(after_secs)
    .execute(&engine.pool)
    .await
    .context("Failed to release the diagnosis lease")?;
    Ok(())
}

/// Records the diagnosis as done and ends the lease.
async fn finish(engine: &Engine, id: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE incidents SET diagnosed_at = clock_timestamp(), diagnose_owner = NULL,
             diagnose_until = NULL
         WHERE id = $1",
    )
    .bind(id)
    .execute(&engine.pool)
    .await
    .context("Failed to record the diagnosis")?;
    Ok(())
}

/// Diagnoses the claimed incident and edits the diagnosis into its runbook reply.
async fn diagnose(engine: &Engine, d: &Diagnoser, c: &Claimed) -> Result<(), SyncError> {
    let (subject, hits) = match engine.handoff.take(c.id) {
        Some(p) => (p.subject, p.hits),
        // Its reply was posted by another replica, or before a restart: search again.
        None => {
            let Some((_, view)) = load_row(&engine.pool, c.id).await? else {
                return Ok(());
            };
            let subject = super::diagnose::subject(&engine.pool, c.id, &view).await?;
            let hits = d.hits_for(&subject).await;
            (subject, hits)
        }
    };
    let outcome = d.diagnose_hits(&subject, hits).await;
    let (ch, reply) = (c.channel.as_str(), c.runbook_reply_ts.as_str());
    call(|| engine.notifier.update(ch, reply, &outcome.message)).await?;
    finish(engine, c.id).await?;
    if let (Some(a), Some(root)) = (&engine.actions, &c.root_ts) {
        let t = crate::actions::offer::Thread {
            incident_id: c.id,
            channel: ch,
            root_ts: root,
            labels: &subject.labels,
        };
        // The diagnosis stands even when the offer fails; the log says why.
        if let Err(e) = a.offer(engine.notifier.clone(), &t, &outcome.draft).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot offer the diagnosis's actions");
        }
    }
    let kind = match outcome.draft {
        Draft::Llm(_) => "LLM draft".to_string(),
        Draft::Fallback(f) => format!("runbook fallback ({})", f.reason.explain()),
    };
    note(engine, c.id, "diagnosed", &kind).await?;
    tracing::info!(diagnosis = %kind, "diagnosis posted");
    Ok(())
}

/// Ends every lease this replica holds (on shutdown), so a restart need not wait for them.
pub(crate) async fn release_all(engine: &Engine) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE incidents SET diagnose_owner = NULL, diagnose_until = NULL
         WHERE diagnose_owner = $1",
    )
    .bind(engine.owner)
    .execute(&engine.pool)
    .await
    .context("Failed to release diagnosis leases")?;
    Ok(())
}

/// What the sync step read and found for each recent runbook reply, kept for its diagnosis
/// so an incident costs one search. Bounded: the last `CAP` replies.
#[derive(Default)]
pub(crate) struct Handoff {
    inner: Mutex<Kept>,
}

/// An incident as the runbook reply saw it: the subject and the sections found for it.
pub(crate) struct Prepared {
    pub subject: Subject,
    pub hits: Vec<Hit>,
}

/// Prepared incidents by id, and the ids in the order they were kept.
#[derive(Default)]
struct Kept {
    by_id: HashMap<i64, Prepared>,
    order: VecDeque<i64>,
}

impl Handoff {
    const CAP: usize = 256;

    pub(crate) fn put(&self, id: i64, p: Prepared) {
        let mut k = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if k.by_id.insert(id, p).is_none() {
            k.order.push_back(id);
        }
        while k.order.len() > Self::CAP {
            if let Some(old) = k.order.pop_front() {
                k.by_id.remove(&old);
            }
        }
    }

    pub(crate) fn take(&self, id: i64) -> Option<Prepared> {
        let mut k = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        k.by_id.remove(&id)
    }
}
