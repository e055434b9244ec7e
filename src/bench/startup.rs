//! `sentinel bench startup`: how long `sentinel serve` takes from exec to ready (`/readyz`
//! 200: database migrated, embedding model loaded, Socket Mode connected), and its resident
//! memory once idle with the model loaded. Runs this very binary as a child process against
//! the Slack emulator, the way a container would start it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use secrecy::ExposeSecret;
use serde::Serialize;

use super::{percentile, print_report_pretty, proc_status_mib, round2, scratch_pool};
use crate::app::App;
use crate::config::EmbedderConfig;
use crate::slack::emulator::{Emulator, EmulatorConfig};

#[derive(Debug, Args)]
pub struct StartupArgs {
    /// Starts measured, one after another.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// How long each replica idles (connected, no traffic) before its memory is read.
    #[arg(long, default_value_t = 10)]
    pub idle_secs: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StartupReport {
    pub runs: usize,
    /// Exec to the first `/readyz` 200.
    pub ready_ms_p50: f64,
    pub ready_ms_max: f64,
    /// Resident memory after `idle_secs` of idling (VmRSS).
    pub idle_rss_mib_p50: f64,
    pub idle_rss_mib_max: f64,
    /// Peak resident memory up to then (VmHWM: the model load).
    pub peak_rss_mib_max: f64,
    /// Exec to exit after SIGTERM at idle.
    pub stop_ms_max: f64,
}

pub async fn run(app: &App, a: StartupArgs) -> anyhow::Result<i32> {
    let url = app.config.require_database_url()?;
    let (pool, scratch) = scratch_pool(url, "sentinel_bench_startup").await?;
    pool.close().await;
    let model_dir = match &app.config.embedder {
        EmbedderConfig::Local { model_dir, .. } => model_dir.display().to_string(),
        _ => anyhow::bail!(
            "bench startup measures the local embedding model: unset SENTINEL_EMBEDDER"
        ),
    };
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let (mut ready, mut idle, mut peak, mut stop) = (vec![], vec![], vec![], vec![]);
    for _ in 0..a.runs.max(1) {
        let port = free_port()?;
        let mut child = tokio::process::Command::new(&exe)
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", scratch.expose_secret())
            .env("SLACK_APP_TOKEN", &emu.shared.cfg.app_token)
            .env("SLACK_BOT_TOKEN", &emu.shared.cfg.bot_token)
            .env("SLACK_API_URL", emu.api_url())
            .env("SENTINEL_WEBHOOK_ADDR", format!("127.0.0.1:{port}"))
            .env("SENTINEL_WEBHOOK_ALERTMANAGER_TOKEN", "bench-startup-token")
            .env("SENTINEL_ALERT_CHANNEL", "C0ALERTS")
            .env("SENTINEL_MODEL_DIR", &model_dir)
            .env("SENTINEL_LLM", "off")
            .env("SENTINEL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start `sentinel serve`")?;
        let started = Instant::now();
        let pid = child.id().context("the child exited at once")?;
        wait_ready(port, &mut child).await?;
        ready.push(started.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_secs(a.idle_secs)).await;
        let (rss, hwm) = memory_mib(pid)?;
        idle.push(rss);
        peak.push(hwm);
        let stopping = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .context("cannot send SIGTERM")?;
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .context("`sentinel serve` did not stop within 30 s of SIGTERM")??;
        stop.push(stopping.elapsed().as_secs_f64() * 1000.0);
    }
    for v in [&mut ready, &mut idle, &mut peak, &mut stop] {
        v.sort_by(f64::total_cmp);
    }
    let max = |v: &[f64]| round2(v.last().copied().unwrap_or(0.0));
    let report = StartupReport {
        runs: ready.len(),
        ready_ms_p50: round2(percentile(&ready, 50.0)),
        ready_ms_max: max(&ready),
        idle_rss_mib_p50: round2(percentile(&idle, 50.0)),
        idle_rss_mib_max: max(&idle),
        peak_rss_mib_max: max(&peak),
        stop_ms_max: max(&stop),
    };
    print_report_pretty(&report, a.json)?;
    Ok(0)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Polls `/readyz` every 10 ms; fails if the child exits first or after 120 s.
async fn wait_ready(port: u16, child: &mut tokio::process::Child) -> anyhow::Result<()> {
    let client = crate::net::client();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("`sentinel serve` exited before it was ready ({status})");
        }
        if let Ok(r) = client.get(&url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "not ready within 120 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// VmRSS and VmHWM of `pid`, in MiB.
fn memory_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let pid = pid.to_string();
    let field = |name: &str| {
        proc_status_mib(&pid, name)
            .with_context(|| format!("cannot read {name} of the child (Linux /proc/{pid}/status)"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}
