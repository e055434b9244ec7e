//! Running intake in a process: the webhook server, the alert writer and (when Slack is
//! available) the incident engine, under one shutdown signal.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;

use super::{run, AppState};
use crate::config::AlertsConfig;
use crate::incidents::intake::{AlertWriter, WriterConfig};
use crate::incidents::Engine;

/// Serves webhooks on `cfg.listen` until `shutdown` resolves. With an engine, stored alerts
/// wake it and it runs beside the server; without one, alerts are only stored.
pub async fn serve(
    cfg: &AlertsConfig,
    pool: PgPool,
    engine: Option<Arc<Engine>>,
    slack_connected: Option<Arc<AtomicBool>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("Failed to listen on {}", cfg.listen))?;
    let writer = AlertWriter::spawn(
        pool.clone(),
        engine.as_ref().map(|e| e.wake.clone()),
        WriterConfig::default(),
    );
    let state = AppState {
        pool,
        writer,
        auth: Arc::new(cfg.auth.clone()),
        max_body_bytes: cfg.max_body_bytes,
        slack_connected,
        accepts_alerts: engine.is_none() || cfg.routes.is_some(),
    };
    let stop = Arc::new(tokio::sync::Notify::new());
    let engine_task = engine.map(|e| {
        let stop = stop.clone();
        tokio::spawn(async move { e.run(async move { stop.notified().await }).await })
    });
    let result = run(listener, state, shutdown).await;
    // A stored permit: the engine stops even if it was not waiting yet.
    stop.notify_one();
    if let Some(t) = engine_task {
        if tokio::time::timeout(std::time::Duration::from_secs(10), t)
            .await
            .is_err()
        {
            tracing::warn!("incident engine did not stop within 10 s");
        }
    }
    result
}
