//! `sentinel bench actions`: clicks on proposals through the emulator and the real bot.
//! Click to process started (the process prints its own start time), and doubled and
//! redelivered clicks (two approvers at once plus two redeliveries of the first envelope,
//! spread over two replicas): how many runs each proposal got.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde::Serialize;
use tokio::net::TcpListener;

use super::{percentile, round2};
use crate::actions::value::Keys;
use crate::actions::{Actions, ActionsConfig, Mode, ProposeRequest, Proposed};
use crate::app::App;
use crate::audit::AuditKey;
use crate::knowledge::actions::Action;
use crate::knowledge::KnowledgeBase;
use crate::slack::emulator::{Emulator, EmulatorConfig};
use crate::slack::SlackPort;
use crate::stack::{ActionsSetup, Parts, SlackSide, Stack};

#[derive(Debug, Args)]
pub struct ActionsArgs {
    /// Clicks timed one after another (click → process started).
    #[arg(long, default_value_t = 200)]
    pub clicks: usize,
    /// Proposals each clicked 4 times (two approvers at once, the first envelope redelivered
    /// twice): 250 make 1,000 clicks.
    #[arg(long, default_value_t = 250)]
    pub doubled: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionsReport {
    pub clicks: usize,
    /// Click sent by the emulator → the action's process running.
    pub click_to_start_p50_ms: f64,
    pub click_to_start_p99_ms: f64,
    pub click_to_start_max_ms: f64,
    pub doubled_proposals: usize,
    /// Deliveries of approve clicks (4 per proposal).
    pub doubled_deliveries: usize,
    /// Proposals that ran exactly once, and runs beyond the first.
    pub ran_once: usize,
    pub extra_runs: usize,
    pub never_ran: usize,
}

const CHANNEL: &str = "C0OPS";
const AUDIT_KEY: &str = "bench-audit-key-0123456789abcdef0123456789";

fn clock_action() -> anyhow::Result<Action> {
    Ok(serde_yaml::from_str(
        r#"{id: bench-clock, title: Print the time, command: ["date", "+%s%N"],
            approvers: ["U0ALICE", "U0BOB"], timeout_secs: 10}"#,
    )?)
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

async fn replica(
    pool: &sqlx::PgPool,
    kb: &KnowledgeBase,
    emu: &Emulator,
    app: &App,
) -> anyhow::Result<Stack> {
    Stack::start(Parts {
        pool: pool.clone(),
        alerts: app.config.alerts.clone(),
        listener: TcpListener::bind("127.0.0.1:0").await?,
        slack: SlackSide::emulator(emu, &[]),
        diagnoser: Some(Arc::new(app.diagnoser(kb.clone()))),
        actions: ActionsSetup {
            config: ActionsConfig {
                mode: Mode::On,
                keys: Some(
                    Keys::parse("b:bench-signing-key-0123456789abcdefghijkl")
                        .map_err(anyhow::Error::msg)?,
                ),
                max_runs_per_hour: i64::MAX,
                max_runs_per_action_per_hour: i64::MAX,
                ..ActionsConfig::default()
            },
            audit_key: Some(AuditKey::from_config(AUDIT_KEY)),
            audit_channel: None,
        },
        metrics: app.metrics.clone(),
        metrics_listener: None,
    })
    .await
}

async fn propose(
    actions: &Arc<Actions>,
    port: Arc<dyn SlackPort>,
) -> anyhow::Result<(i64, String)> {
    let req = ProposeRequest {
        incident_id: None,
        channel: CHANNEL.into(),
        thread_ts: None,
        runbook_path: "bench.md".into(),
        action: clock_action()?,
        labels: BTreeMap::new(),
        given: BTreeMap::new(),
        requested_by: None,
    };
    match actions.propose(port, req).await? {
        Proposed::Offered(p) => Ok((p.id, p.message_ts.unwrap_or_default())),
        Proposed::NotOffered(e) => anyhow::bail!("not offered: {e}"),
    }
}

async fn wait_done(pool: &sqlx::PgPool, ids: &[i64], limit: Duration) -> anyhow::Result<()> {
    let end = tokio::time::Instant::now() + limit;
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM action_proposals WHERE id = ANY($1)
               AND state IN ('proposed', 'approved', 'running')",
        )
        .bind(ids)
        .fetch_one(pool)
        .await?;
        if open == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < end,
            "{open} proposals still open"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn run(app: &App, a: ActionsArgs) -> anyhow::Result<i32> {
    let pool = super::alerts::scratch(app, "sentinel_bench_actions").await?;
    sqlx::query("TRUNCATE action_approvals, action_proposals, action_switches RESTART IDENTITY")
        .execute(&pool)
        .await?;
    let kb = KnowledgeBase::open(pool.clone(), app.embedder().await?).await?;
    let emu = Emulator::start(EmulatorConfig {
        post_burst: 1_000_000,
        ..EmulatorConfig::default()
    })
    .await?;
    let first = replica(&pool, &kb, &emu, app).await?;
    let second = replica(&pool, &kb, &emu, app).await?;
    anyhow::ensure!(
        emu.wait_connected(2, Duration::from_secs(10)).await,
        "the replicas did not connect"
    );
    let bot = first
        .bot
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no bot"))?;
    let actions = bot
        .ctx
        .actions
        .clone()
        .ok_or_else(|| anyhow::anyhow!("actions are off"))?;
    let port: Arc<dyn SlackPort> = Arc::new(bot.ctx.slack.clone());

    let mut ms = Vec::with_capacity(a.clicks);
    for _ in 0..a.clicks {
        let (id, ts) = propose(&actions, port.clone()).await?;
        let clicked = now_ns();
        emu.click_button(CHANNEL, &ts, "U0ALICE", "act_approve")
            .ok_or_else(|| anyhow::anyhow!("no Approve button"))?;
        wait_done(&pool, &[id], Duration::from_secs(30)).await?;
        let out: Option<String> =
            sqlx::query_scalar("SELECT output FROM action_proposals WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await?;
        let started: i128 = out.unwrap_or_default().trim().parse()?;
        ms.push((started - clicked) as f64 / 1e6);
    }
    ms.sort_by(|x, y| x.total_cmp(y));

    let mut ids = Vec::with_capacity(a.doubled);
    for _ in 0..a.doubled {
        let (id, ts) = propose(&actions, port.clone()).await?;
        let env = emu.click_button(CHANNEL, &ts, "U0ALICE", "act_approve");
        emu.click_button(CHANNEL, &ts, "U0BOB", "act_approve");
        if let Some(e) = env {
            emu.resend(&e);
            emu.resend(&e);
        }
        ids.push(id);
    }
    wait_done(&pool, &ids, Duration::from_secs(300)).await?;
    // Runs as users see them: "ran" replies under each proposal (the reply follows the
    // recorded state by a moment: wait for it).
    let mut tss = Vec::with_capacity(ids.len());
    for id in &ids {
        let ts: Option<String> =
            sqlx::query_scalar("SELECT message_ts FROM action_proposals WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await?;
        tss.push(ts.unwrap_or_default());
    }
    let count = || {
        let st = emu.state();
        let (mut once, mut extra, mut never) = (0, 0, 0);
        for ts in &tss {
            let runs = st
                .messages
                .iter()
                .filter(|m| {
                    m.thread_ts.as_deref() == Some(ts.as_str())
                        && m.ts != *ts
                        && m.text.contains("ran:")
                })
                .count();
            match runs {
                0 => never += 1,
                1 => once += 1,
                n => extra += n - 1,
            }
        }
        (once, extra, never)
    };
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while count().2 > 0 && tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Late duplicates would show within a moment too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (once, extra, never) = count();
    first.shutdown().await;
    second.shutdown().await;
    let r = ActionsReport {
        clicks: ms.len(),
        click_to_start_p50_ms: round2(percentile(&ms, 50.0)),
        click_to_start_p99_ms: round2(percentile(&ms, 99.0)),
        click_to_start_max_ms: round2(ms.last().copied().unwrap_or(0.0)),
        doubled_proposals: ids.len(),
        doubled_deliveries: ids.len() * 4,
        ran_once: once,
        extra_runs: extra,
        never_ran: never,
    };
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{r:#?}");
    }
    Ok(if extra == 0 && never == 0 { 0 } else { 1 })
}
