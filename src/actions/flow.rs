//! The approval state machine at work, up to the run: proposing, and every click
//! (approve, reject, dry run, roll back, stop) checked, authorised and applied once. Every
//! state change and its audit row share one transaction: if the audit row cannot be
//! written, nothing changes and nothing runs. What follows an approval is in `run`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use sqlx::PgConnection;

use super::render::{self, View};
use super::resolve::{approvals_needed, resolve, ResolveError};

use super::store::{self, state, NewProposal, Proposal};
use super::value::{ClickKind, ValueError};
use super::Actions;
use crate::audit::{self, Actor, Event, Kind};
use crate::knowledge::actions::{Action, Risk};
use crate::mrkdwn;
use crate::slack::{Mrkdwn, SlackPort};

/// The run lease: renewed every third of it while a process runs.
pub(super) const RUN_LEASE_SECS: f64 = 15.0;
/// Between two verification attempts.
pub(super) const VERIFY_PAUSE: Duration = Duration::from_secs(2);
/// Auto-approval switches itself off after this many failures in a row...
pub(super) const AUTO_FAILS_IN_A_ROW: usize = 2;
/// ... or above this failure rate over the last `AUTO_WINDOW` runs.
pub(super) const AUTO_MAX_FAILURE_RATE: f64 = 0.10;
pub(super) const AUTO_WINDOW: i64 = 20;

/// An action to offer in a thread (or, without a thread, in a channel).
#[derive(Debug, Clone)]
pub struct ProposeRequest {
    pub incident_id: Option<i64>,
    pub channel: String,
    pub thread_ts: Option<String>,
    pub runbook_path: String,
    pub action: Action,
    pub labels: BTreeMap<String, String>,
    /// Values given with `/sentinel run`.
    pub given: BTreeMap<String, String>,
    /// Who asked with `/sentinel run`; `None` when Sentinel proposes.
    pub requested_by: Option<String>,
}

/// A proposal made, or why the action is not offered.
#[derive(Debug)]
pub enum Proposed {
    Offered(Box<Proposal>),
    NotOffered(ResolveError),
}

/// Who clicked, on which message.
#[derive(Debug, Clone)]
pub struct Clicker {
    pub user: String,
    pub channel: Option<String>,
    pub message_ts: Option<String>,
}

/// A click that did nothing: a sentence for the person (ephemeral), or an internal failure.
#[derive(Debug, thiserror::Error)]
pub enum ClickError {
    #[error("{0}")]
    User(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn user(s: impl Into<String>) -> ClickError {
    ClickError::User(s.into())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Actions {
    pub(super) fn view(&self) -> View<'_> {
        View {
            keys: &self.keys,
            cfg: &self.cfg,
            now: now(),
            button_ttl: self.cfg.ttl.as_secs() as i64,
        }
    }

    pub(super) async fn actor(&self, user_id: &str) -> Actor {
        let name = match &self.dir {
            Some(d) => self.directory.name(d.as_ref(), user_id).await,
            None => None,
        };
        Actor::User {
            id: user_id.to_string(),
            name: name.unwrap_or_else(|| user_id.to_string()),
        }
    }

    pub(super) fn event(
        &self,
        actor: Actor,
        kind: Kind,
        p: &Proposal,
        outcome: Option<String>,
    ) -> Event {
        Event {
            actor,
            kind,
            incident_id: p.incident_id,
            proposal_id: Some(p.id),
            action: Some(p.action_id.clone()),
            argv: Some(p.argv.clone()),
            outcome,
            detail: json!({}),
        }
    }

    pub(super) async fn audit(&self, conn: &mut PgConnection, e: Event) -> anyhow::Result<()> {
        audit::append(conn, &self.audit_key, e)
            .await
            .context("Failed to write the audit row")?;
        Ok(())
    }

    /// Redraws the proposal message (or logs why it cannot).
    pub(super) async fn show(&self, port: &dyn SlackPort, p: &Proposal) {
        let Some(ts) = &p.message_ts else {
            return;
        };
        let msg = render::proposal(p, &self.view());
        if let Err(e) = port.update(&p.channel, ts, &msg).await {
            tracing::warn!(proposal = p.id, error = %e, "cannot update the proposal message");
        }
    }

    pub(super) async fn say(
        &self,
        port: &dyn SlackPort,
        p: &Proposal,
        msg: &crate::slack::Message,
    ) {
        let sent = match &p.thread_ts {
            Some(t) => port.reply(&p.channel, t, msg).await.map(|_| ()),
            None => match &p.message_ts {
                Some(t) => port.reply(&p.channel, t, msg).await.map(|_| ()),
                None => port.post(&p.channel, msg).await.map(|_| ()),
            },
        };
        if let Err(e) = sent {
            tracing::warn!(proposal = p.id, error = %e, "cannot post to the proposal's thread");
        }
    }

    /// Stores and posts a proposal; an auto-approved one starts running.
    pub async fn propose(
        self: &Arc<Self>,
        port: Arc<dyn SlackPort>,
        req: ProposeRequest,
    ) -> anyhow::Result<Proposed> {
        let a = &req.action;
        let resolved = match resolve(a, &req.labels, &req.given) {
            Ok(r) => r,
            Err(e) => return Ok(Proposed::NotOffered(e)),
        };
        let approvers = if a.approvers.is_empty() {
            self.cfg.default_approvers.clone()
        } else {
            a.approvers.clone()
        };
        let mut tx = self.pool.begin().await.context("Failed to begin")?;
        let auto = req.requested_by.is_none()
            && self.cfg.auto_approve
            && a.auto_approve
            && a.risk == Risk::Low
            && !store::paused(&mut tx, "global").await?
            && !store::paused(&mut tx, &format!("auto:{}", a.id)).await?;
        let risk = match a.risk {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        };
        let new = NewProposal {
            incident_id: req.incident_id,
            runbook_path: req.runbook_path.clone(),
            action_id: a.id.clone(),
            title: a.title.clone(),
            risk: risk.into(),
            argv: resolved.argv,
            params: resolved.params,
            verify_argv: resolved.verify_argv,
            verify_expect: a.verify.as_ref().and_then(|v| v.expect.clone()),
            verify_timeout_secs: a.verify.as_ref().map(|v| v.timeout_secs as i32),
            rollback_argv: resolved.rollback_argv,
            rollback_auto: a.rollback.as_ref().is_some_and(|r| r.auto),
            timeout_secs: a.timeout_secs as i32,
            approvers,
            approvals_needed: approvals_needed(a.risk),
            requested_by: req.requested_by.clone(),
            auto,
            channel: req.channel.clone(),
            thread_ts: req.thread_ts.clone(),
            ttl_secs: self.cfg.ttl.as_secs() as i64,
        };
        let p = store::insert(&mut tx, &new).await?;
        let actor = match &req.requested_by {
            Some(u) => self.actor(u).await,
            None => Actor::Sentinel,
        };
        let mut e = self.event(actor, Kind::Proposed, &p, None);
        e.detail = json!({ "params": &p.params.0, "runbook": &p.runbook_path, "risk": &p.risk });
        self.audit(&mut tx, e).await?;
        if auto {
            self.audit(
                &mut tx,
                self.event(Actor::Sentinel, Kind::AutoApproved, &p, None),
            )
            .await?;
        }
        tx.commit().await.context("Failed to commit the proposal")?;
        let msg = render::proposal(&p, &self.view());
        let ts = match &p.thread_ts {
            Some(t) => port.reply(&p.channel, t, &msg).await,
            None => port.post(&p.channel, &msg).await,
        }
        .map_err(|e| anyhow::anyhow!("Failed to post the proposal: {e}"))?;
        store::set_message(&self.pool, p.id, &ts).await?;
        let mut p = p;
        p.message_ts = Some(ts);
        if auto {
            let (me, port) = (self.clone(), port.clone());
            let id = p.id;
            tokio::spawn(async move { me.execute(port, id).await });
        }
        Ok(Proposed::Offered(Box::new(p)))
    }

    /// A button click: verified, authorised, applied once; slow work (the run) follows in
    /// this task, after Slack's ack.
    pub async fn click(
        self: &Arc<Self>,
        port: Arc<dyn SlackPort>,
        who: &Clicker,
        kind: ClickKind,
        value: &str,
    ) -> Result<(), ClickError> {
        let click = match self.keys.verify(value, now()) {
            Ok(c) if c.kind == kind => c,
            Ok(_) => return self.refuse_value(who, None, ValueError::WrongButton).await,
            Err(e) => return self.refuse_value(who, None, e).await,
        };
        let Some(p) = store::load(&self.pool, click.proposal).await? else {
            return self.refuse_value(who, None, ValueError::BadSignature).await;
        };
        // A value copied from another message (another incident's proposal) points elsewhere.
        if who.channel.as_deref() != Some(p.channel.as_str())
            || who.message_ts.is_some() && who.message_ts != p.message_ts
        {
            return self
                .refuse_value(who, Some(&p), ValueError::WrongButton)
                .await;
        }
        match kind {
            ClickKind::Approve => self.approve(port, who, p).await,
            ClickKind::Reject => self.reject(port.as_ref(), who, p).await,
            ClickKind::DryRun => self.dry_run(port.as_ref(), who, p).await,
            ClickKind::Rollback => self.rollback_clicked(port, who, p).await,
            ClickKind::Stop => self.stop(port.as_ref(), who, p).await,
        }
    }

    async fn refuse_value(
        &self,
        who: &Clicker,
        p: Option<&Proposal>,
        why: ValueError,
    ) -> Result<(), ClickError> {
        let kind = if why == ValueError::Expired {
            Kind::Expired
        } else {
            Kind::ClickForged
        };
        let e = Event {
            actor: self.actor(&who.user).await,
            kind,
            incident_id: p.and_then(|p| p.incident_id),
            proposal_id: p.map(|p| p.id),
            action: p.map(|p| p.action_id.clone()),
            argv: None,
            outcome: Some(why.code().into()),
            detail: json!({ "channel": &who.channel, "message_ts": &who.message_ts }),
        };
        let mut conn = self.pool.acquire().await.context("Failed to connect")?;
        self.audit(&mut conn, e).await?;
        tracing::warn!(user = %who.user, reason = why.code(), "refused an action button");
        Err(user(format!(
            "That button cannot be used: {why}. Nothing ran."
        )))
    }

    /// Audits a refused decision and tells the person why.
    async fn refuse(
        &self,
        who: &Clicker,
        p: &Proposal,
        code: &str,
        sentence: String,
    ) -> Result<(), ClickError> {
        let mut conn = self.pool.acquire().await.context("Failed to connect")?;
        let e = self.event(
            self.actor(&who.user).await,
            Kind::ApprovalRefused,
            p,
            Some(code.into()),
        );
        self.audit(&mut conn, e).await?;
        Err(user(sentence))
    }

    async fn allowed(&self, p: &Proposal, user: &str) -> bool {
        self.directory
            .allows(self.dir.as_deref(), &p.approvers, user)
            .await
    }

    async fn approve(
        self: &Arc<Self>,
        port: Arc<dyn SlackPort>,
        who: &Clicker,
        p: Proposal,
    ) -> Result<(), ClickError> {
        let u = who.user.as_str();
        if !state::OPEN.contains(&p.state.as_str()) {
            return Err(user(format!(
                "{} is already {}; nothing more to approve.",
                p.title,
                p.state.replace('_', " ")
            )));
        }
        if !self.allowed(&p, u).await {
            let who_may = p.approvers.join(", ");
            return self
                .refuse(
                    who,
                    &p,
                    "not_an_approver",
                    format!(
                        "You are not an approver of “{}” (approvers: {}). Nothing ran.",
                        p.title,
                        if who_may.is_empty() {
                            "none configured".into()
                        } else {
                            who_may
                        }
                    ),
                )
                .await;
        }
        if p.requested_by.as_deref() == Some(u) {
            return self
                .refuse(
                    who,
                    &p,
                    "requester",
                    "You asked for this action, so someone else must approve it. Nothing ran."
                        .into(),
                )
                .await;
        }
        let mut tx = self.pool.begin().await.context("Failed to begin")?;
        if store::paused(&mut tx, "global").await? {
            drop(tx);
            return self
                .refuse(who, &p, "paused", "Actions are paused (`/sentinel actions resume` turns them back on). Nothing ran.".into())
                .await;
        }
        if let Some(why) = self.over_cap(&mut tx, &p.action_id).await? {
            drop(tx);
            return self
                .refuse(who, &p, "capped", format!("{why} Nothing ran."))
                .await;
        }
        if !store::add_approval(&mut tx, p.id, u).await? {
            drop(tx);
            return self
                .refuse(
                    who,
                    &p,
                    "same_approver",
                    format!(
                        "You already approved “{}”; it needs a second, different approver.",
                        p.title
                    ),
                )
                .await;
        }
        let count = p.approved_by.len() as i32 + 1;
        let to = if count >= p.approvals_needed {
            state::APPROVED
        } else {
            state::AWAITING_SECOND
        };
        let Some(moved) = store::transition(&mut tx, p.id, state::OPEN, to, Some(u)).await? else {
            // Someone else decided first (a reject, an expiry, another approval): keep nothing.
            drop(tx);
            return Err(user(
                "Someone else decided on this proposal just before you; nothing changed.",
            ));
        };
        let actor = self.actor(u).await;
        let mut e = self.event(actor, Kind::ApprovalRecorded, &moved, Some(to.into()));
        e.detail = json!({ "approvals": count, "needed": p.approvals_needed });
        self.audit(&mut tx, e).await?;
        tx.commit().await.context("Failed to commit the approval")?;
        if to == state::APPROVED {
            // The run redraws the message as it starts: no Slack call before the process.
            self.execute(port, moved.id).await;
        } else {
            self.show(port.as_ref(), &moved).await;
        }
        Ok(())
    }

    /// `Some(sentence)` when a run now would pass a blast-radius cap.
    pub(super) async fn over_cap(
        &self,
        conn: &mut PgConnection,
        action_id: &str,
    ) -> anyhow::Result<Option<String>> {
        let (all, this) = store::runs_last_hour(conn, action_id).await?;
        Ok(if all >= self.cfg.max_runs_per_hour {
            Some(format!(
                "The limit of {} action runs per hour is reached.",
                self.cfg.max_runs_per_hour
            ))
        } else if this >= self.cfg.max_runs_per_action_per_hour {
            Some(format!(
                "The limit of {} runs per hour of `{action_id}` is reached.",
                self.cfg.max_runs_per_action_per_hour
            ))
        } else {
            None
        })
    }

    async fn reject(
        &self,
        port: &dyn SlackPort,
        who: &Clicker,
        p: Proposal,
    ) -> Result<(), ClickError> {
        let u = who.user.as_str();
        if !self.allowed(&p, u).await && p.requested_by.as_deref() != Some(u) {
            return self
                .refuse(
                    who,
                    &p,
                    "not_an_approver",
                    format!(
                        "Only an approver of “{}” (or whoever asked for it) can reject it.",
                        p.title
                    ),
                )
                .await;
        }
        let mut tx = self.pool.begin().await.context("Failed to begin")?;
        let Some(moved) =
            store::transition(&mut tx, p.id, state::OPEN, state::REJECTED, Some(u)).await?
        else {
            return Err(user(format!(
                "“{}” is already {}.",
                p.title,
                p.state.replace('_', " ")
            )));
        };
        self.audit(
            &mut tx,
            self.event(self.actor(u).await, Kind::Rejected, &moved, None),
        )
        .await?;
        tx.commit()
            .await
            .context("Failed to commit the rejection")?;
        self.show(port, &moved).await;
        Ok(())
    }

    async fn dry_run(
        &self,
        port: &dyn SlackPort,
        who: &Clicker,
        p: Proposal,
    ) -> Result<(), ClickError> {
        let mut conn = self.pool.acquire().await.context("Failed to connect")?;
        self.audit(
            &mut conn,
            self.event(self.actor(&who.user).await, Kind::DryRun, &p, None),
        )
        .await?;
        let env = self.cfg.env_allow.join(", ");
        let mut text = mrkdwn!(
            "🧪 *Dry run of {}* (asked by {}): would run {} with only {} from the environment, killed after {} s.",
            Mrkdwn::untrusted(&p.title),
            Mrkdwn::code(&who.user),
            Mrkdwn::code(&render::argv_line(&p.argv)),
            Mrkdwn::code(&env),
            p.timeout_secs as i64
        );
        if let Some(v) = &p.verify_argv {
            text = mrkdwn!(
                "{} Then it would check with {}.",
                text,
                Mrkdwn::code(&render::argv_line(v))
            );
        }
        text = mrkdwn!("{} Nothing ran.", text);
        self.say(port, &p, &render::note(text)).await;
        Ok(())
    }

    async fn stop(
        &self,
        port: &dyn SlackPort,
        who: &Clicker,
        p: Proposal,
    ) -> Result<(), ClickError> {
        let u = who.user.as_str();
        if !self.allowed(&p, u).await && !self.cfg.admins.iter().any(|a| a == u) {
            return self
                .refuse(
                    who,
                    &p,
                    "not_an_approver",
                    "Only an approver or an admin can stop this action.".into(),
                )
                .await;
        }
        let mut tx = self.pool.begin().await.context("Failed to begin")?;
        // Not started yet: it never will be.
        if let Some(moved) =
            store::transition(&mut tx, p.id, &[state::APPROVED], state::STOPPED, Some(u)).await?
        {
            self.audit(
                &mut tx,
                self.event(self.actor(u).await, Kind::Stopped, &moved, None),
            )
            .await?;
            tx.commit().await.context("Failed to commit the stop")?;
            self.show(port, &moved).await;
            return Ok(());
        }
        if !store::request_stop(&mut tx, p.id, u).await? {
            return Err(user("This action is not running any more."));
        }
        self.audit(
            &mut tx,
            self.event(
                self.actor(u).await,
                Kind::Stopped,
                &p,
                Some("requested".into()),
            ),
        )
        .await?;
        tx.commit().await.context("Failed to commit the stop")?;
        Ok(())
    }

    async fn rollback_clicked(
        self: &Arc<Self>,
        port: Arc<dyn SlackPort>,
        who: &Clicker,
        p: Proposal,
    ) -> Result<(), ClickError> {
        if !self.allowed(&p, &who.user).await {
            return self
                .refuse(
                    who,
                    &p,
                    "not_an_approver",
                    format!("Only an approver of “{}” can roll it back.", p.title),
                )
                .await;
        }
        let actor = self.actor(&who.user).await;
        if !self
            .rollback(port.as_ref(), p.id, actor, Some(&who.user))
            .await?
        {
            return Err(user("There is nothing to roll back any more."));
        }
        Ok(())
    }
}
