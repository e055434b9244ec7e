//! Running an approved proposal: the claim (run lease and audit row), the process under
//! its renewed lease, verification, rollback, the auto-approval breaker, and the sweep
//! that expires proposals and marks runs whose replica died. The log, not a person, reads
//! failures here: the click was answered before the run began.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use super::flow::{
    AUTO_FAILS_IN_A_ROW, AUTO_MAX_FAILURE_RATE, AUTO_WINDOW, RUN_LEASE_SECS, VERIFY_PAUSE,
};
use super::render;
use super::runner::{self, Exit, Ran, Spec};
use super::store::{self, state, Proposal};
use super::{Actions, Mode};
use crate::audit::{self, Actor, Kind};
use crate::mrkdwn;
use crate::slack::{Mrkdwn, SlackPort};

impl Actions {
    /// Runs an approved proposal: claim (lease + audit), process, record, verify, rollback.
    /// Logs instead of failing: it runs after the click was answered.
    pub async fn execute(self: &Arc<Self>, port: Arc<dyn SlackPort>, id: i64) {
        if let Err(e) = self.execute_inner(port.as_ref(), id).await {
            tracing::error!(proposal = id, error = %format!("{e:#}"), "action run failed");
        }
        self.anchor(port.as_ref()).await;
    }

    /// Anchors the audit chain's head outside the database (the log, and the audit
    /// channel when set) after an action.
    async fn anchor(&self, port: &dyn SlackPort) {
        let slack = self.audit_channel.as_deref().map(|c| (port, c));
        if let Err(e) = audit::anchor::now(&self.pool, Some(&self.audit_key), slack).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot anchor the audit head");
        }
    }

    async fn execute_inner(self: &Arc<Self>, port: &dyn SlackPort, id: i64) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await.context("Failed to begin")?;
        if store::paused(&mut tx, "global").await? {
            return Ok(()); // stays approved; runs once resumed (the sweep picks it up)
        }
        let Some(action_id) =
            sqlx::query_scalar::<_, String>("SELECT action_id FROM action_proposals WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(());
        };
        if self.over_cap(&mut tx, &action_id).await?.is_some() {
            return Ok(()); // stays approved until the hour allows it
        }
        let Some(p) = store::claim_run(&mut tx, id, self.owner, RUN_LEASE_SECS).await? else {
            return Ok(()); // another replica has it, or its incident is busy
        };
        let mut e = self.event(Actor::Sentinel, Kind::RunStarted, &p, None);
        let mode = if self.cfg.dry(p.commands()) {
            Mode::DryRun.name()
        } else {
            self.cfg.mode.name()
        };
        e.detail = json!({ "mode": mode, "approved_by": &p.approved_by });
        self.audit(&mut tx, e).await?;
        tx.commit()
            .await
            .context("Failed to commit the run start")?;
        // The message says "running" while the process starts, not before it.
        let ((), ran) = tokio::join!(
            self.show(port, &p),
            self.run_leased(&p, &p.argv, p.timeout_secs as u64)
        );
        let has_verify = p.verify_argv.is_some() && ran.exit.success();
        let to = match (&ran.exit, has_verify) {
            (Exit::Stopped, _) => state::STOPPED,
            (_, true) => state::VERIFYING,
            (x, false) if x.success() => state::SUCCEEDED,
            _ => state::FAILED,
        };
        let mut tx = self.pool.begin().await.context("Failed to begin")?;
        let Some(p) =
            store::record_run(&mut tx, id, self.owner, to, ran.exit.code(), &ran.output).await?
        else {
            // The lease was lost (this replica stalled past it): the sweep said "unknown".
            return Ok(());
        };
        let mut e = self.event(
            Actor::Sentinel,
            Kind::RunExited,
            &p,
            Some(
                ran.exit
                    .describe(Duration::from_secs(p.timeout_secs as u64)),
            ),
        );
        e.detail = json!({ "exit_code": ran.exit.code(), "elapsed_ms": ran.elapsed.as_millis() as u64, "output": &ran.output });
        self.audit(&mut tx, e).await?;
        tx.commit().await.context("Failed to commit the run")?;
        let dry = self.cfg.dry(p.commands());
        self.say(
            port,
            &p,
            &render::outcome(
                &p,
                "ran",
                &ran.exit,
                p.timeout_secs as u64,
                &ran.output,
                dry,
            ),
        )
        .await;
        let p = if has_verify {
            self.verify(&p).await?
        } else {
            p
        };
        self.metrics.action_run(&p.state);
        self.show(port, &p).await;
        if state::ROLLBACKABLE.contains(&p.state.as_str()) && p.rollback_auto {
            self.rollback(port, p.id, Actor::Sentinel, None).await?;
        }
        if p.auto {
            self.auto_breaker(port, &p).await?;
        }
        Ok(())
    }

    /// Runs `argv` (or, when the proposal's action is only described, describes it) under
    /// the proposal's run lease, renewing it and obeying Stop.
    async fn run_leased(&self, p: &Proposal, argv: &[String], timeout_secs: u64) -> Ran {
        if self.cfg.dry(p.commands()) {
            return Ran {
                exit: Exit::Code(0),
                output: format!("dry run: would run {}", render::argv_line(argv)),
                elapsed: Duration::ZERO,
            };
        }
        let spec = Spec {
            argv,
            timeout: Duration::from_secs(timeout_secs.max(1)),
            env_allow: &self.cfg.env_allow,
            output_cap: self.cfg.output_cap,
        };
        let (pool, owner, id) = (self.pool.clone(), self.owner, p.id);
        let stop = async move {
            loop {
                tokio::time::sleep(Duration::from_secs_f64(RUN_LEASE_SECS / 3.0)).await;
                match store::renew_run(&pool, id, owner, RUN_LEASE_SECS).await {
                    Ok(Some(true)) | Ok(None) => return, // stop asked, or lease lost
                    Ok(Some(false)) => {}
                    Err(e) => {
                        tracing::warn!(proposal = id, error = %format!("{e:#}"), "cannot renew a run lease")
                    }
                }
            }
        };
        runner::run(
            &spec,
            || tracing::info!(proposal = id, "action process started"),
            stop,
        )
        .await
    }

    /// Retries the verification until it passes or its time is up.
    async fn verify(&self, p: &Proposal) -> anyhow::Result<Proposal> {
        let Some(argv) = &p.verify_argv else {
            return Ok(p.clone());
        };
        let budget = Duration::from_secs(p.verify_timeout_secs.unwrap_or(120).max(1) as u64);
        let deadline = tokio::time::Instant::now() + budget;
        let mut attempts = 0;
        let (passed, last) = loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ran = self.run_leased(p, argv, left.as_secs().clamp(1, 30)).await;
            // A dry run describes the check; there is nothing to judge.
            let dry = self.cfg.dry(p.commands());
            let expected = dry
                || p.verify_expect
                    .as_deref()
                    .is_none_or(|x| ran.output.contains(x));
            if ran.exit.success() && expected {
                break (true, ran);
            }
            if ran.exit == Exit::Stopped || tokio::time::Instant::now() + VERIFY_PAUSE >= deadline {
                break (false, ran);
            }
            tokio::time::sleep(VERIFY_PAUSE).await;
        };
        let to = if passed {
            state::VERIFIED
        } else {
            state::VERIFY_FAILED
        };
        let mut tx = self.pool.begin().await.context("Failed to begin")?;
        let Some(done) = store::record_verify(&mut tx, p.id, self.owner, to, &last.output).await?
        else {
            return Ok(p.clone());
        };
        let kind = if passed {
            Kind::VerifyPassed
        } else {
            Kind::VerifyFailed
        };
        let mut e = self.event(
            Actor::Sentinel,
            kind,
            &done,
            Some(format!("{attempts} attempt(s)")),
        );
        e.detail = json!({ "output": &last.output, "argv": argv });
        self.audit(&mut tx, e).await?;
        tx.commit()
            .await
            .context("Failed to commit the verification")?;
        Ok(done)
    }

    /// Runs the rollback of a failed proposal; `false` when it is not (any more) possible.
    pub(super) async fn rollback(
        &self,
        port: &dyn SlackPort,
        id: i64,
        actor: Actor,
        by: Option<&str>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await.context("Failed to begin")?;
        let Some(p) = store::claim_rollback(&mut tx, id, self.owner, RUN_LEASE_SECS).await? else {
            return Ok(false);
        };
        if let Some(u) = by {
            sqlx::query("UPDATE action_proposals SET decided_by = $2 WHERE id = $1")
                .bind(id)
                .bind(u)
                .execute(&mut *tx)
                .await?;
        }
        let argv = p.rollback_argv.clone().unwrap_or_default();
        let mut e = self.event(actor, Kind::RollbackStarted, &p, None);
        e.argv = Some(argv.clone());
        self.audit(&mut tx, e).await?;
        tx.commit()
            .await
            .context("Failed to commit the rollback start")?;
        self.show(port, &p).await;
        let ran = self.run_leased(&p, &argv, p.timeout_secs as u64).await;
        let to = if ran.exit.success() {
            state::ROLLED_BACK
        } else {
            state::ROLLBACK_FAILED
        };
        let mut tx = self.pool.begin().await.context("Failed to begin")?;
        let Some(done) =
            store::record_run(&mut tx, id, self.owner, to, ran.exit.code(), &ran.output).await?
        else {
            return Ok(true);
        };
        let mut e = self.event(
            Actor::Sentinel,
            Kind::RollbackExited,
            &done,
            Some(
                ran.exit
                    .describe(Duration::from_secs(p.timeout_secs as u64)),
            ),
        );
        e.argv = Some(argv);
        e.detail = json!({ "output": &ran.output });
        self.audit(&mut tx, e).await?;
        tx.commit().await.context("Failed to commit the rollback")?;
        let dry = self.cfg.dry(p.commands());
        self.say(
            port,
            &done,
            &render::outcome(
                &done,
                "rollback",
                &ran.exit,
                p.timeout_secs as u64,
                &ran.output,
                dry,
            ),
        )
        .await;
        self.show(port, &done).await;
        Ok(true)
    }

    /// After an auto-approved run: two failures in a row, or more than 10% of the last 20,
    /// switch auto-approval of that action off until an admin resumes it.
    async fn auto_breaker(&self, port: &dyn SlackPort, p: &Proposal) -> anyhow::Result<()> {
        let outcomes = store::auto_outcomes(&self.pool, &p.action_id, AUTO_WINDOW).await?;
        let in_a_row = outcomes.iter().take_while(|ok| !**ok).count();
        let failures = outcomes.iter().filter(|ok| !**ok).count();
        let rate = failures as f64 / outcomes.len().max(1) as f64;
        let trip = in_a_row >= AUTO_FAILS_IN_A_ROW
            || (outcomes.len() as i64 >= AUTO_WINDOW && rate > AUTO_MAX_FAILURE_RATE);
        if !trip {
            return Ok(());
        }
        let reason = format!(
            "{in_a_row} failures in a row; {failures} of the last {} runs failed",
            outcomes.len()
        );
        let mut tx = self.pool.begin().await.context("Failed to begin")?;
        if !store::set_switch(
            &mut tx,
            &format!("auto:{}", p.action_id),
            true,
            "sentinel",
            &reason,
        )
        .await?
        {
            return Ok(());
        }
        self.audit(
            &mut tx,
            self.event(
                Actor::Sentinel,
                Kind::AutoApprovalTripped,
                p,
                Some(reason.clone()),
            ),
        )
        .await?;
        tx.commit()
            .await
            .context("Failed to commit the auto-approval switch")?;
        let text = mrkdwn!(
            "🔌 Auto-approval of {} is now *off* ({}). Its proposals need a click until an admin runs {}.",
            Mrkdwn::code(&p.action_id),
            Mrkdwn::own(reason),
            Mrkdwn::code(&format!("/sentinel actions resume {}", p.action_id))
        );
        self.say(port, p, &render::note(text)).await;
        Ok(())
    }

    /// Expires proposals, marks runs whose replica died as outcome unknown (never re-run),
    /// and starts approved proposals that wait. Called every few seconds by every replica.
    pub async fn sweep(self: &Arc<Self>, port: Arc<dyn SlackPort>) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await.context("Failed to begin")?;
        let swept = store::sweep(&mut tx).await?;
        for p in &swept {
            let kind = if p.state == state::EXPIRED {
                Kind::Expired
            } else {
                Kind::RunUnknown
            };
            self.audit(
                &mut tx,
                self.event(Actor::Sentinel, kind, p, Some(p.state.clone())),
            )
            .await?;
        }
        tx.commit().await.context("Failed to commit the sweep")?;
        for p in &swept {
            self.show(port.as_ref(), p).await;
            if p.state == state::OUTCOME_UNKNOWN {
                self.metrics.action_run(state::OUTCOME_UNKNOWN);
                let text = mrkdwn!(
                    "⚠️ *{}*: outcome unknown. The replica running it stopped before it finished; Sentinel does not run it again by itself.",
                    Mrkdwn::untrusted(&p.title)
                );
                self.say(port.as_ref(), p, &render::note(text)).await;
            }
        }
        for id in store::approved_waiting(&self.pool).await? {
            let (me, port) = (self.clone(), port.clone());
            tokio::spawn(async move { me.execute(port, id).await });
        }
        Ok(())
    }
}
