//! Ack latency under load: a burst of envelopes through the emulator and the real Socket
//! Mode listener while every handler's work takes a while. Used by `sentinel bench
//! slack-ack` and by a test on a smaller burst.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clap::Args;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use crate::slack::emulator::{Emulator, EmulatorConfig, BOT_USER_ID};
use crate::slack::events::Inbound;
use crate::slack::socket::{Dispatch, ListenerOptions, SocketListener};

#[derive(Debug, Args)]
pub struct SlackAckArgs {
    #[arg(long, default_value_t = 1000)]
    pub envelopes: usize,
    /// How long each handler's work takes, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub work_ms: u64,
    #[arg(long, default_value_t = 2)]
    pub connections: u32,
    /// Background jobs at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AckReport {
    pub envelopes: usize,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    pub max_ms: f64,
    /// Envelopes Slack had to send again (an ack missed the 3 s deadline).
    pub redeliveries: usize,
    /// Jobs whose (slow) work finished.
    pub handled: usize,
}

/// A handler whose work takes `work` and touches nothing.
struct SlowWork {
    work: Duration,
    done: Arc<AtomicUsize>,
}

#[async_trait]
impl Dispatch for SlowWork {
    async fn handle(&self, _inbound: Inbound) {
        tokio::time::sleep(self.work).await;
        self.done.fetch_add(1, Ordering::SeqCst);
    }
}

/// Sends `n` mentions at once and measures every ack.
pub async fn measure(
    n: usize,
    work: Duration,
    connections: u32,
    concurrency: usize,
) -> anyhow::Result<AckReport> {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let done = Arc::new(AtomicUsize::new(0));
    let listener = SocketListener::start(
        &emu.api_url(),
        &SecretString::from(emu.shared.cfg.app_token.clone()),
        Arc::new(SlowWork {
            work,
            done: done.clone(),
        }),
        ListenerOptions {
            connections,
            reconnect_secs: 1,
            ping_secs: 15,
            stagger_secs: 0,
            concurrency,
            ..ListenerOptions::default()
        },
    )
    .await?;
    anyhow::ensure!(
        emu.wait_connected(connections as usize, Duration::from_secs(10))
            .await,
        "the listener did not connect to the emulator"
    );
    for i in 0..n {
        emu.send_event(json!({
            "type": "app_mention", "channel": "C0GENERAL", "user": "U0ALICE",
            "text": format!("<@{BOT_USER_ID}> question {i}"), "ts": format!("1700000000.{i:06}"),
        }));
    }
    let acked = emu
        .wait_for(Duration::from_secs(60), |s| {
            (s.acks.len() >= n).then_some(())
        })
        .await
        .is_some();
    // Let the slow work finish so the measurement covers acks *during* it (with slack for
    // a loaded machine: the loop ends as soon as the work is done).
    let deadline = tokio::time::Instant::now()
        + work * (n / concurrency.max(1) + 2) as u32
        + Duration::from_secs(10);
    while done.load(Ordering::SeqCst) < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    listener.shutdown().await;
    let acks = emu.acks();
    anyhow::ensure!(acked, "only {} of {n} envelopes were acked", acks.len());
    let mut ms: Vec<f64> = acks
        .iter()
        .map(|a| a.latency.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    Ok(AckReport {
        envelopes: n,
        ack_p50_ms: pct(0.50),
        ack_p99_ms: pct(0.99),
        max_ms: *ms.last().unwrap_or(&0.0),
        redeliveries: acks.iter().filter(|a| a.retry_attempt > 0).count(),
        handled: done.load(Ordering::SeqCst),
    })
}

/// `sentinel bench slack-ack`: exits 1 when an ack took 3 s or more.
pub async fn run(a: SlackAckArgs) -> anyhow::Result<i32> {
    let r = measure(
        a.envelopes,
        Duration::from_millis(a.work_ms),
        a.connections,
        a.concurrency,
    )
    .await?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} envelopes, work {} ms each: ack p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} redelivered, {} handled",
            r.envelopes, a.work_ms, r.ack_p50_ms, r.ack_p99_ms, r.max_ms, r.redeliveries, r.handled
        );
    }
    Ok(if r.max_ms < 3000.0 { 0 } else { 1 })
}
