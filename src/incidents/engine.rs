//! The incident engine: applies stored alerts to incidents, then syncs Slack. Any number
//! of replicas can run it on one database.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use super::route::Routes;
use crate::diagnosis::Diagnoser;
use crate::slack::SlackPort;

/// More than `threshold` new incidents in a channel within `window` start a storm digest.
#[derive(Debug, Clone, Copy)]
pub struct StormConfig {
    pub threshold: u32,
    pub window: Duration,
}

impl Default for StormConfig {
    fn default() -> Self {
        Self {
            threshold: 5,
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub routes: Routes,
    pub storm: StormConfig,
    /// Prefix for links to runbook sources (`<base>/<path>#<anchor>`).
    pub runbook_base_url: Option<String>,
    /// Concurrent Slack sync workers per replica.
    pub sync_workers: usize,
    /// Runbook sections in the reply.
    pub runbook_hits: usize,
}

impl EngineConfig {
    pub fn new(routes: Routes) -> Self {
        Self {
            routes,
            storm: StormConfig::default(),
            runbook_base_url: None,
            sync_workers: 4,
            runbook_hits: 3,
        }
    }
}

/// One replica's engine.
pub struct Engine {
    pub pool: PgPool,
    pub notifier: Arc<dyn SlackPort>,
    /// The knowledge step: a runbook reply for each new incident, then its diagnosis (LLM
    /// draft or runbook fallback) edited in. `None` posts roots only (`serve-webhooks
    /// --console` without `--runbooks`).
    pub diagnoser: Option<Arc<Diagnoser>>,
    pub config: EngineConfig,
    /// Identifies this replica's Slack sync leases.
    pub owner: Uuid,
    /// Poked when new alerts are stored (the webhook writer holds a clone).
    pub wake: Arc<Notify>,
    sync_wake: Notify,
}

/// Alerts applied per transaction.
const APPLY_BATCH: i64 = 5000;
/// Other replicas' work is noticed by polling at this interval.
const POLL: Duration = Duration::from_millis(500);

impl Engine {
    pub fn new(pool: PgPool, notifier: Arc<dyn SlackPort>, config: EngineConfig) -> Self {
        Self {
            pool,
            notifier,
            diagnoser: None,
            config,
            owner: Uuid::new_v4(),
            wake: Arc::new(Notify::new()),
            sync_wake: Notify::new(),
        }
    }

    /// Adds the knowledge step: a runbook reply saying a diagnosis is being drafted, then
    /// edited in place into the diagnosis.
    pub fn with_diagnoser(mut self, diagnoser: Arc<Diagnoser>) -> Self {
        self.diagnoser = Some(diagnoser);
        self
    }

    /// Applies every stored alert to its incident. Returns the number applied.
    pub async fn apply_all(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let n = super::apply::apply_pending(&self.pool, &self.config, APPLY_BATCH).await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Brings Slack up to date with every incident and digest; returns the syncs done.
    pub async fn sync_all(&self) -> anyhow::Result<usize> {
        let workers = (0..self.config.sync_workers.max(1)).map(|_| async {
            let mut n = 0usize;
            while super::sync::sync_next(self).await? {
                n += 1;
            }
            anyhow::Ok(n)
        });
        let done = futures::future::try_join_all(workers).await?;
        Ok(done.into_iter().sum())
    }

    /// Apply, then sync: what one tick of `run` does, deterministic for tests.
    pub async fn run_once(&self) -> anyhow::Result<()> {
        self.apply_all().await?;
        self.sync_all().await?;
        Ok(())
    }

    /// Runs until `shutdown` resolves: one loop applies alerts as they are stored, another
    /// syncs Slack, so a slow or rate-limited Slack never delays intake.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let apply = async {
            loop {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
                match self.apply_all().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::debug!(alerts = n, "applied alerts to incidents");
                        self.sync_wake.notify_one();
                    }
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "applying alerts failed"),
                }
            }
        };
        let sync = async {
            loop {
                tokio::select! {
                    _ = self.sync_wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
                if let Err(e) = self.sync_all().await {
                    tracing::warn!(error = %format!("{e:#}"), "syncing Slack failed");
                }
            }
        };
        tokio::select! {
            _ = apply => {}
            _ = sync => {}
            _ = shutdown => tracing::info!("incident engine stopped"),
        }
    }
}
