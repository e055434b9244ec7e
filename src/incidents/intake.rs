//! The alert writer: requests queue their alerts on a bounded channel, writer tasks store
//! whatever has queued up in one statement, commit, then answer every waiting request.
//! A sender gets its 2xx only after its alerts are in Postgres.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use super::store::insert_alerts;
use crate::alerts::Alert;

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Requests that may wait for a writer (back-pressure beyond this).
    pub queue: usize,
    /// Alerts per statement.
    pub max_batch: usize,
    /// Concurrent writer tasks (each holds one connection while writing).
    pub writers: usize,
    /// How long a request waits for its batch before answering 503.
    pub timeout: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue: 4096,
            max_batch: 4000,
            writers: 3,
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("the database is unavailable; alerts were not stored, retry later")]
    Unavailable,
    #[error("timed out waiting for the database; alerts may not be stored, retry later")]
    Timeout,
}

struct Job {
    alerts: Vec<Alert>,
    done: oneshot::Sender<Result<(), WriteError>>,
}

/// Cheap to clone; every clone feeds the same writer tasks.
#[derive(Clone)]
pub struct AlertWriter {
    tx: mpsc::Sender<Job>,
    timeout: Duration,
}

impl AlertWriter {
    /// Starts the writer tasks. `wake` is poked after each commit (the incident engine).
    pub fn spawn(pool: PgPool, wake: Option<Arc<Notify>>, cfg: WriterConfig) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(cfg.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..cfg.writers.max(1) {
            let rx = rx.clone();
            let pool = pool.clone();
            let wake = wake.clone();
            tokio::spawn(async move {
                while let Some(mut batch) = next_batch(&rx, cfg.max_batch).await {
                    // A request that already got its 503 (timeout) is not stored behind
                    // its sender's back: it will re-send.
                    batch.retain(|j| !j.done.is_closed());
                    if batch.is_empty() {
                        continue;
                    }
                    let alerts: Vec<&Alert> = batch.iter().flat_map(|j| j.alerts.iter()).collect();
                    let result = match insert_alerts(&pool, &alerts).await {
                        Ok(_) => Ok(()),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), alerts = alerts.len(), "storing alerts failed");
                            Err(WriteError::Unavailable)
                        }
                    };
                    drop(alerts);
                    if result.is_ok() {
                        if let Some(w) = &wake {
                            w.notify_one();
                        }
                    }
                    for job in batch {
                        let _ = job.done.send(result.clone());
                    }
                }
            });
        }
        Self {
            tx,
            timeout: cfg.timeout,
        }
    }

    /// Stores the alerts durably; returns once they are committed.
    pub async fn store(&self, alerts: Vec<Alert>) -> Result<(), WriteError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        let work = async {
            self.tx
                .send(Job { alerts, done })
                .await
                .map_err(|_| WriteError::Unavailable)?;
            wait.await.map_err(|_| WriteError::Unavailable)?
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| WriteError::Timeout)?
    }
}

/// Waits for one job, then takes whatever else is queued up to `max` alerts.
async fn next_batch(rx: &Mutex<mpsc::Receiver<Job>>, max: usize) -> Option<Vec<Job>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut n = first.alerts.len();
    let mut batch = vec![first];
    while n < max {
        match rx.try_recv() {
            Ok(job) => {
                n += job.alerts.len();
                batch.push(job);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}
