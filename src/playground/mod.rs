//! `sentinel playground`: the whole product in a browser, with no Slack workspace. The
//! Slack emulator, Sentinel connected to it over Socket Mode as in production (the same
//! stack `sentinel demo` runs), and a local web page that shows the emulated workspace live
//! and lets a visitor act in it: post, ask, run `/sentinel`, click buttons as an approver or
//! not, fire alerts through the real webhook endpoint, and watch incidents, actions and the
//! audit log. See docs/playground.md.

pub mod alerts;
pub mod api;
pub mod guard;
pub mod panel;
pub mod requests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::demo::{self, EmulatedParts};
use crate::error::UserError;
use crate::slack::emulator::{Emulator, EmulatorConfig};
use crate::stack::Stack;

const GRAFANA_SAMPLE: &str = include_str!("../../tests/data/alerts/grafana-firing.json");

#[derive(Debug, Args)]
pub struct PlaygroundArgs {
    /// Where the page is served. Loopback by default: anyone who reaches it acts as any
    /// person in the emulated workspace.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Runbooks to ingest.
    #[arg(long, default_value = "runbooks")]
    pub runbooks: PathBuf,
    /// Runbooks with harmless actions (`echo`) for the approval loop.
    #[arg(long, default_value = "tests/data/actions")]
    pub action_runbooks: PathBuf,
}

/// The warning printed when the page is served beyond this machine.
pub fn exposure_warning(addr: &SocketAddr) -> Option<String> {
    (!addr.ip().is_loopback()).then(|| {
        format!(
            "warning: serving the playground on {addr}, beyond this machine: whoever reaches it can act as any person in the emulated workspace and fire alerts"
        )
    })
}

pub async fn run(app: &App, a: PlaygroundArgs) -> anyhow::Result<i32> {
    if let Some(w) = exposure_warning(&a.addr) {
        eprintln!("{w}");
    }
    let started = with_local_database(app).await?;
    let app = started.as_ref().unwrap_or(app);
    let listener = TcpListener::bind(a.addr).await.map_err(|e| {
        UserError::new(format!(
            "cannot listen on {}: {e} (choose another with --addr 127.0.0.1:PORT)",
            a.addr
        ))
    })?;
    let kb = app.knowledge().await?;
    demo::ingest_bundled(&kb, &[a.runbooks, a.action_runbooks]).await?;
    let pg = Playground::start(listener, demo::emulated_parts(app, &kb)).await?;
    println!(
        "Alert webhooks: http://{}/hooks/{{alertmanager,grafana,generic}} (Authorization: Bearer {})",
        pg.stack.webhook_addr,
        demo::TOKEN
    );
    println!("Playground ready: http://{}/  (Ctrl-C to stop)", pg.addr);
    crate::cli::shutdown_signal().await;
    pg.shutdown().await;
    Ok(0)
}

/// The script `make db` runs: it starts (or reuses) the checkout's own Postgres with
/// pgvector and prints `DATABASE_URL=…` last.
const LOCAL_DB_SCRIPT: &str = "scripts/db.sh";

/// With no `DATABASE_URL`, run from Sentinel's own checkout: the app on the local
/// Postgres that [`LOCAL_DB_SCRIPT`] starts. `None` when `DATABASE_URL` is set, or
/// anywhere else (then the usual sentence asks for one): a binary run in some other
/// directory never runs a script it happens to find there.
async fn with_local_database(app: &App) -> anyhow::Result<Option<App>> {
    let script = std::path::Path::new(LOCAL_DB_SCRIPT);
    if app.config.database_url.is_some() || !script.is_file() || !in_sentinel_checkout() {
        return Ok(None);
    }
    eprintln!(
        "DATABASE_URL is not set: starting the local Postgres with pgvector ({LOCAL_DB_SCRIPT})…"
    );
    let failed = |why: String| {
        UserError::new(format!(
            "{LOCAL_DB_SCRIPT} could not start the local Postgres ({why}); see its output above, or set DATABASE_URL to your own"
        ))
    };
    // Its progress (stderr) shows as it goes; stdout carries the URL.
    let out = tokio::process::Command::new(script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| failed(e.to_string()))?
        .wait_with_output()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(out.status.to_string()).into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let url = stdout
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("DATABASE_URL="))
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| failed("it printed no DATABASE_URL".into()))?;
    let mut config = app.config.clone();
    config.database_url = Some(url.trim().to_string().into());
    Ok(Some(App {
        config,
        metrics: app.metrics.clone(),
    }))
}

/// Whether the current directory is Sentinel's checkout: its `Cargo.toml` names the
/// `sentinel` package.
fn in_sentinel_checkout() -> bool {
    std::fs::read_to_string("Cargo.toml").is_ok_and(|t| is_sentinel_manifest(&t))
}

fn is_sentinel_manifest(cargo_toml: &str) -> bool {
    let mut in_package = false;
    for line in cargo_toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "name" {
                    return value.trim() == "\"sentinel\"";
                }
            }
        }
    }
    false
}

/// A running playground: the emulator, the stack on it, and the page's server.
pub struct Playground {
    pub addr: SocketAddr,
    pub emu: Arc<Emulator>,
    pub stack: Stack,
    stop: tokio::sync::watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl Playground {
    /// Starts the emulator and the stack on it (`parts`' runbooks already ingested), then
    /// serves the page on `listener`.
    pub async fn start(listener: TcpListener, parts: EmulatedParts) -> anyhow::Result<Self> {
        let emu = Arc::new(Emulator::start(EmulatorConfig::default()).await?);
        let pool = parts.kb.pool.clone();
        let audit_key = parts.audit_key.clone();
        let stack = demo::start_on_emulator(&emu, parts).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let ctx = api::Ctx {
            stop: stopped.clone(),
            emu: emu.clone(),
            pool,
            audit_key,
            webhook: stack.webhook_addr,
            token: demo::TOKEN.into(),
            channel: demo::ALERTS.into(),
            samples: json!([
                {"name": "Alertmanager: KubePodCrashLooping", "hook": "alertmanager", "body": demo::SAMPLE_ALERT},
                {"name": "Alertmanager: DemoServiceDown (offers actions)", "hook": "alertmanager", "body": demo::DEMO_ACTION_ALERT},
                {"name": "Grafana: NodeFilesystemSpaceFillingUp", "hook": "grafana", "body": GRAFANA_SAMPLE},
            ]),
        };
        let addr = listener.local_addr()?;
        let app = api::router(ctx, addr.ip().is_loopback());
        let mut stopped = stopped;
        let server = tokio::spawn(async move {
            let graceful = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await
            {
                tracing::error!(error = %e, "playground server stopped");
            }
        });
        Ok(Self {
            addr,
            emu,
            stack,
            stop,
            server,
        })
    }

    /// Stops the page's server (open event streams end, so pages show they are
    /// reconnecting), then the stack.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let mut server = self.server;
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut server)
            .await
            .is_err()
        {
            tracing::warn!("the playground's page server did not stop in time");
            server.abort();
        }
        self.stack.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sentinels_own_manifest_counts_as_its_checkout() {
        assert!(is_sentinel_manifest(
            "[package]\nname = \"sentinel\"\nversion = \"0.1.0\"\n"
        ));
        assert!(!is_sentinel_manifest(
            "[package]\nname = \"other\"\n[dependencies]\nsentinel = \"1\"\n"
        ));
        assert!(!is_sentinel_manifest(
            "[dependencies]\nname = \"sentinel\"\n"
        ));
        assert!(!is_sentinel_manifest(""));
    }

    #[test]
    fn only_beyond_loopback_is_warned_about() {
        assert!(exposure_warning(&"127.0.0.1:8080".parse().unwrap()).is_none());
        assert!(exposure_warning(&"[::1]:8080".parse().unwrap()).is_none());
        let w = exposure_warning(&"0.0.0.0:8080".parse().unwrap()).unwrap();
        assert!(
            w.contains("0.0.0.0:8080") && w.contains("any person"),
            "{w}"
        );
    }
}
