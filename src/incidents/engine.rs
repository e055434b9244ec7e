//! The incident engine: applies stored alerts to incidents, syncs Slack, and diagnoses new
//! incidents, each in its own loop. Any number of replicas can run it on one database.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use super::drafts::{self, Handoff};
use super::route::Routes;
use crate::db::health::DbHealth;
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
    /// Concurrent Slack sync workers per replica (diagnoses have their own pool, sized by
    /// the diagnoser's `workers`).
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
    /// draft or runbook fallback) edited in by the diagnosis pool (`opts.workers` at
    /// once). `None` posts roots only (`serve-webhooks --console` without `--runbooks`).
    pub diagnoser: Option<Arc<Diagnoser>>,
    pub config: EngineConfig,
    /// Proposes the diagnosis's actions in the thread; `None` when actions are off.
    pub actions: Option<Arc<crate::actions::Actions>>,
    /// Identifies this replica's Slack sync and diagnosis leases.
    pub owner: Uuid,
    /// Whether the database answers: while it does not, failed steps are logged at debug
    /// level (the outage itself is logged once, when it starts and ends).
    pub db: DbHealth,
    /// Poked when new alerts are stored (the webhook writer holds a clone).
    pub wake: Arc<Notify>,
    /// Wakes every idle sync worker: incidents changed.
    pub(super) sync_wake: Notify,
    /// Wakes every idle diagnosis worker: a runbook reply was posted.
    pub(super) diagnose_wake: Notify,
    /// Runbook sections found for a reply, kept for its diagnosis.
    pub(super) handoff: Handoff,
}

/// Alerts applied per transaction.
const APPLY_BATCH: i64 = 5000;
/// Other replicas' work (and expired leases) is noticed by polling at this interval.
const POLL: Duration = Duration::from_millis(500);
/// A worker whose step failed (the database is down?) waits this long before the next.
const ERROR_PAUSE: Duration = Duration::from_secs(2);

impl Engine {
    pub fn new(pool: PgPool, notifier: Arc<dyn SlackPort>, config: EngineConfig) -> Self {
        Self {
            pool,
            notifier,
            diagnoser: None,
            config,
            actions: None,
            owner: Uuid::new_v4(),
            db: DbHealth::always_up(),
            wake: Arc::new(Notify::new()),
            sync_wake: Notify::new(),
            diagnose_wake: Notify::new(),
            handoff: Handoff::default(),
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
        drain(self.config.sync_workers, || super::sync::sync_next(self)).await
    }

    /// Edits every waiting diagnosis into its runbook reply; returns the diagnoses done.
    pub async fn diagnose_all(&self) -> anyhow::Result<usize> {
        match &self.diagnoser {
            Some(d) => drain(d.opts.workers, || drafts::diagnose_next(self)).await,
            None => Ok(0),
        }
    }

    /// Apply, sync, then diagnose: what `run` does for the alerts stored so far,
    /// deterministic for tests.
    pub async fn run_once(&self) -> anyhow::Result<()> {
        self.apply_all().await?;
        self.sync_all().await?;
        self.diagnose_all().await?;
        Ok(())
    }

    /// Runs until `shutdown` resolves: one loop applies alerts as they are stored, a pool
    /// of `sync_workers` brings Slack up to date, and a pool of the diagnoser's `workers`
    /// edits diagnoses in. A slow or rate-limited Slack never delays intake, and a slow or
    /// failing LLM never delays a root or a runbook reply.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        // The owner in `sync_owner`/`diagnose_owner` says which replica holds a lease.
        tracing::info!(engine.owner = %self.owner, "incident engine started");
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
                        self.sync_wake.notify_waiters();
                    }
                    Err(e) => self.db.log_failed("applying alerts failed", &e),
                }
            }
        };
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let sync = serve(
            &self.db,
            self.config.sync_workers,
            &self.sync_wake,
            "syncing Slack failed",
            stopping.clone(),
            || super::sync::sync_next(&self),
        );
        tokio::pin!(sync);
        let diagnose = async {
            match &self.diagnoser {
                Some(d) => {
                    serve(
                        &self.db,
                        d.opts.workers,
                        &self.diagnose_wake,
                        "diagnosing an incident failed",
                        stopping.clone(),
                        || drafts::diagnose_next(&self),
                    )
                    .await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = apply => {}
            _ = &mut sync => {}
            _ = diagnose => {}
            _ = shutdown => {}
        }
        // Slack updates in progress finish (a post cut short would leave its incident to
        // other replicas only once its lease expires); no worker takes new work.
        let _ = stop.send(true);
        sync.await;
        // Diagnoses cut short are someone else's at once, not after the lease expires.
        if let Err(e) = drafts::release_all(&self).await {
            tracing::warn!(error = %format!("{e:#}"), "releasing diagnosis leases failed");
        }
        tracing::info!("incident engine stopped");
    }
}

/// Runs `workers` copies of `step` until each finds nothing to do; returns the steps done.
async fn drain<F, Fut>(workers: usize, step: F) -> anyhow::Result<usize>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let workers = (0..workers.max(1)).map(|_| async {
        let mut n = 0usize;
        while step().await? {
            n += 1;
        }
        anyhow::Ok(n)
    });
    let done = futures::future::try_join_all(workers).await?;
    Ok(done.into_iter().sum())
}

/// Runs `workers` copies of `step` until `stop` turns true. A worker works while there is
/// work, then sleeps until `wake` (poked for every new piece of work, waking every idle
/// worker) or `POLL` (other replicas' work, expired leases). No worker leaves while work
/// is queued; on `stop`, each finishes the step it is in and takes no other.
async fn serve<F, Fut>(
    db: &DbHealth,
    workers: usize,
    wake: &Notify,
    what: &'static str,
    stop: tokio::sync::watch::Receiver<bool>,
    step: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let step = &step;
    let worker = || {
        let mut stop = stop.clone();
        async move {
            while !*stop.borrow_and_update() {
                // Listening before looking: a poke while this worker looks is not lost.
                let woken = wake.notified();
                match step().await {
                    Ok(true) => {}
                    Ok(false) => {
                        tokio::select! {
                            _ = woken => {}
                            _ = tokio::time::sleep(POLL) => {}
                            _ = stop.changed() => {}
                        }
                    }
                    Err(e) => {
                        db.log_failed(what, &e);
                        tokio::select! {
                            _ = tokio::time::sleep(ERROR_PAUSE) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
            }
        }
    };
    futures::future::join_all((0..workers.max(1)).map(|_| worker())).await;
}
