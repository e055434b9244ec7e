//! Whether the database answers, as the whole process sees it: a probe on its own
//! connection, so webhooks, `/readyz` and the bot can say "database unavailable" at once
//! during an outage instead of waiting out the pool's acquire timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// How often the probe looks. A webhook during the first second of an outage still gets
/// its 503, only after the writer's own timeout.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A connect or a `SELECT 1` slower than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The sentence webhooks, `/readyz` and Slack users get while the database is down.
pub const UNAVAILABLE: &str = "Sentinel's database is unavailable right now; retry in a minute";

/// Cheap to clone; every clone reads the same flag. The probe stops once the last clone
/// is dropped.
#[derive(Clone)]
pub struct DbHealth {
    inner: Arc<Inner>,
}

struct Inner {
    up: AtomicBool,
}

impl DbHealth {
    /// Starts probing the database `pool` connects to, on a connection of its own.
    /// Starts "up": the caller has just connected.
    pub fn spawn(pool: &PgPool) -> Self {
        let h = Self::always_up();
        let opts = (*pool.connect_options()).clone();
        tokio::spawn(probe(Arc::downgrade(&h.inner), opts));
        h
    }

    /// A flag nothing probes (tests of parts that need one, processes without a pool).
    pub fn always_up() -> Self {
        Self {
            inner: Arc::new(Inner {
                up: AtomicBool::new(true),
            }),
        }
    }

    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Logs a failed periodic step: a warning, unless the database is down (the outage was
    /// logged once, when it began; each retry during it is only debug).
    pub fn log_failed(&self, what: &str, e: &anyhow::Error) {
        if self.observe(e) || !self.is_up() {
            tracing::debug!(error = %format!("{e:#}"), "{what} (database unavailable)");
        } else {
            tracing::warn!(error = %format!("{e:#}"), "{what}");
        }
    }

    /// Marks the database down when `e` says it is unreachable (the probe brings it back
    /// up); returns whether it did. Use it where a database error is handled.
    pub fn observe(&self, e: &anyhow::Error) -> bool {
        let down = is_unavailable(e);
        if down && self.inner.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %format!("{e:#}"), "database unavailable");
        }
        down
    }
}

/// Whether an error chain says the database cannot be reached (as opposed to a query that
/// failed): connection refused or reset, the server shutting down, a pool out of
/// connections because none can be opened.
pub fn is_unavailable(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<sqlx::Error>())
        .any(sqlx_unavailable)
}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now.
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

async fn probe(health: Weak<Inner>, opts: PgConnectOptions) {
    let mut conn: Option<PgConnection> = None;
    let mut down_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let Some(inner) = health.upgrade() else {
            return;
        };
        let result = check(&mut conn, &opts).await;
        match (result, down_since) {
            (Ok(()), Some(since)) => {
                inner.up.store(true, Ordering::Relaxed);
                down_since = None;
                tracing::info!(
                    outage_ms = since.elapsed().as_millis() as u64,
                    "database reachable again"
                );
            }
            (Ok(()), None) => inner.up.store(true, Ordering::Relaxed),
            (Err(reason), None) => {
                conn = None;
                down_since = Some(Instant::now());
                if inner.up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%reason, "database unavailable");
                }
            }
            (Err(_), Some(_)) => conn = None,
        }
    }
}

/// One probe: (re)connect if needed, then `SELECT 1`.
async fn check(conn: &mut Option<PgConnection>, opts: &PgConnectOptions) -> Result<(), String> {
    if conn.is_none() {
        let c = tokio::time::timeout(PROBE_TIMEOUT, opts.connect())
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        *conn = Some(c);
    }
    let Some(c) = conn.as_mut() else {
        return Err("no connection".into());
    };
    tokio::time::timeout(PROBE_TIMEOUT, c.ping())
        .await
        .map_err(|_| "ping timed out".to_string())?
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_outages_query_errors_are_not() {
        let refused = anyhow::Error::new(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))
        .context("Failed to store alerts");
        assert!(is_unavailable(&refused));
        assert!(is_unavailable(&anyhow::Error::new(
            sqlx::Error::PoolTimedOut
        )));
        assert!(!is_unavailable(&anyhow::Error::new(
            sqlx::Error::RowNotFound
        )));
        assert!(!is_unavailable(&anyhow::anyhow!("Slack said no")));
    }

    #[test]
    fn observing_an_outage_marks_the_flag_down() {
        let h = DbHealth::always_up();
        assert!(!h.observe(&anyhow::anyhow!("a bug")));
        assert!(h.is_up());
        assert!(h.observe(&anyhow::Error::new(sqlx::Error::PoolClosed)));
        assert!(!h.is_up());
    }
}
