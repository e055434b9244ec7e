//! `sentinel demo`: the whole product on bundled data, against the Slack emulator.
//!
//! Ingests `runbooks/`, starts the emulator and the full stack in this process (bot over
//! real Socket Mode, webhook server, incident engine with diagnosis), then plays an on-call
//! session: the sample Alertmanager webhook, an alert message in the alert channel, a
//! question in the incident thread and a few slash commands; then the actions loop on a
//! harmless bundled action (proposal, a refused click, an approved run, its verification)
//! and `sentinel audit verify`. Prints the channel as a transcript.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use secrecy::SecretString;
use serde_json::json;
use tokio::net::TcpListener;

use crate::actions::value::Keys;
use crate::actions::{ActionsConfig, Mode};
use crate::alerts::parse;
use crate::app::App;
use crate::audit::AuditKey;
use crate::config::AlertsConfig;
use crate::diagnosis::Diagnoser;
use crate::http::{SourceAuth, WebhookAuth};
use crate::incidents::Routes;
use crate::knowledge::{ingest, KnowledgeBase};
use crate::slack::emulator::{transcript, Emulator, EmulatorConfig, BOT_USER_ID};
use crate::stack::{ActionsSetup, Parts, SlackSide, Stack};

/// The sample alert shipped with the repository (Alertmanager webhook v4).
pub(crate) const SAMPLE_ALERT: &str =
    include_str!("../tests/data/alerts/alertmanager-v4-firing.json");
/// The bearer token every webhook source expects on the emulated stack.
pub(crate) const TOKEN: &str = "demo-token";
/// The alert channel: webhook incidents go there, and the bot watches it.
pub(crate) const ALERTS: &str = "C0ALERTS";
const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Runbooks to ingest.
    #[arg(long, default_value = "runbooks")]
    pub runbooks: PathBuf,
    /// Runbooks with harmless actions (`echo`) for the approval loop.
    #[arg(long, default_value = "tests/data/actions")]
    pub action_runbooks: PathBuf,
}

/// The audit key the demo uses when `SENTINEL_AUDIT_KEY` is not set (the demo's log only).
pub const DEMO_AUDIT_KEY: &str = "sentinel-demo-audit-key-not-for-production-use";
/// The demo's button-signing key.
const DEMO_SIGNING_KEY: &str = "demo:sentinel-demo-signing-key-not-for-production";
/// The demo's harmless alert: its runbook declares `echo` actions.
pub(crate) const DEMO_ACTION_ALERT: &str = r#"{"version":"4","status":"firing","receiver":"sentinel","groupKey":"{}:{alertname=\"DemoServiceDown\"}",
 "groupLabels":{"alertname":"DemoServiceDown"},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://alertmanager.example","truncatedAlerts":0,
 "alerts":[{"status":"firing","labels":{"alertname":"DemoServiceDown","service":"web","severity":"critical"},
 "annotations":{"summary":"The demo web service fails its health check"},"startsAt":"2026-11-29T10:00:00Z","endsAt":"0001-01-01T00:00:00Z",
 "generatorURL":"http://prometheus.example/graph","fingerprint":"demo-service-down"}]}"#;

pub async fn run(app: &App, a: DemoArgs) -> anyhow::Result<i32> {
    let kb = app.knowledge().await?;
    ingest_bundled(&kb, &[a.runbooks.clone(), a.action_runbooks.clone()]).await?;
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let parts = emulated_parts(app, &kb);
    let audit_key = parts.audit_key.clone();
    let stack = start_on_emulator(&emu, parts).await?;
    let webhook_thread = fire_alerts(&emu, &stack, &kb.pool).await?;
    talk_to_the_bot(&emu, &webhook_thread).await?;
    let refused = approve_an_action(&emu, &stack).await?;
    println!("\n── Slack (emulated) ──");
    println!("{}", transcript::render(&emu.state(), ALERTS));
    let acks = emu.acks();
    let max = acks.iter().map(|a| a.latency).max().unwrap_or_default();
    println!(
        "{} envelopes acked, slowest ack {:.1} ms (Slack's deadline: 3000 ms)",
        acks.len(),
        max.as_secs_f64() * 1000.0
    );
    println!("\nWhat Mallory (not an approver) was told, privately: {refused}");
    let report = crate::audit::verify(&kb.pool, &audit_key).await?;
    println!("\n$ sentinel audit verify --json");
    println!("{}", report.to_json());
    if app.config.audit.key.is_none() {
        println!("(the demo's audit key; check it yourself with SENTINEL_AUDIT_KEY={DEMO_AUDIT_KEY} sentinel audit verify)");
    }
    stack.shutdown().await;
    Ok(if report.ok() { 0 } else { 1 })
}

/// The approval loop: the harmless alert's thread offers its runbook's actions; Mallory
/// (not an approver) clicks Approve and is refused; Bob (in `@oncall`) approves; the action
/// runs and is verified. Returns what Mallory was told.
async fn approve_an_action(emu: &Emulator, stack: &Stack) -> anyhow::Result<String> {
    let resp = crate::net::client()
        .post(format!("http://{}/hooks/alertmanager", stack.webhook_addr))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(DEMO_ACTION_ALERT)
        .send()
        .await?;
    println!(
        "POST /hooks/alertmanager (DemoServiceDown, a runbook with harmless actions) -> {}",
        resp.status()
    );
    let proposal = emu
        .wait_for(WAIT, |st| {
            st.messages
                .iter()
                .find(|m| {
                    m.channel == ALERTS
                        && m.text
                            .starts_with("Proposed action: Restart the demo service")
                })
                .map(|m| m.ts.clone())
        })
        .await
        .ok_or_else(|| anyhow::anyhow!("the demo action was not proposed"))?;
    emu.click_button(ALERTS, &proposal, "U0MALLORY", "act_approve")
        .ok_or_else(|| anyhow::anyhow!("the proposal has no Approve button"))?;
    let refused = emu
        .wait_for(WAIT, |st| {
            st.ephemerals
                .iter()
                .find(|e| e.user == "U0MALLORY")
                .map(|e| e.text.clone())
        })
        .await
        .ok_or_else(|| anyhow::anyhow!("Mallory's click was not answered"))?;
    emu.click_button(ALERTS, &proposal, "U0BOB", "act_approve")
        .ok_or_else(|| anyhow::anyhow!("the proposal has no Approve button"))?;
    emu.wait_for(WAIT, |st| {
        st.messages
            .iter()
            .find(|m| m.ts == proposal && m.text.contains("Verified"))
            .map(|_| ())
    })
    .await
    .ok_or_else(|| anyhow::anyhow!("the approved action was not verified"))?;
    println!("Approved by Bob (in @oncall): ran and verified.");
    Ok(refused)
}

/// Ingests the bundled runbooks and forgets the previous run's incidents.
pub(crate) async fn ingest_bundled(kb: &KnowledgeBase, runbooks: &[PathBuf]) -> anyhow::Result<()> {
    let report = ingest::ingest(&kb.pool, kb.embedder.as_ref(), runbooks, false).await?;
    for f in &report.failed {
        eprintln!("skipped {}: {}", f.path, f.reason);
    }
    println!("{}", report.summary_line());
    forget_previous_run(&kb.pool).await
}

/// What a stack on the emulator is built from besides the emulator itself.
pub struct EmulatedParts {
    pub kb: KnowledgeBase,
    pub diagnoser: Arc<Diagnoser>,
    /// The configured alert settings; routes and webhook tokens are replaced.
    pub alerts: AlertsConfig,
    pub audit_key: AuditKey,
    /// The process's metrics registry.
    pub metrics: crate::metrics::Metrics,
}

/// The parts `demo` and `playground` run on, from the configuration.
pub fn emulated_parts(app: &App, kb: &KnowledgeBase) -> EmulatedParts {
    EmulatedParts {
        kb: kb.clone(),
        diagnoser: Arc::new(app.diagnoser(kb.clone())),
        alerts: app.config.alerts.clone(),
        audit_key: app
            .config
            .audit
            .key
            .clone()
            .unwrap_or_else(|| AuditKey::from_config(DEMO_AUDIT_KEY)),
        metrics: app.metrics.clone(),
    }
}

/// The stack as `serve` runs it, connected to the emulator over Socket Mode: webhook
/// incidents go to the alert channel, every webhook source takes the bearer [`TOKEN`],
/// actions are on (approvers: `@oncall` and Carol; Mallory may not approve).
pub async fn start_on_emulator(emu: &Emulator, p: EmulatedParts) -> anyhow::Result<Stack> {
    let mut alerts = p.alerts;
    alerts.routes = Some(Routes::single(ALERTS));
    let bearer = || SourceAuth {
        bearer: Some(SecretString::from(TOKEN)),
        hmac_secret: None,
    };
    alerts.auth = WebhookAuth {
        alertmanager: bearer(),
        grafana: bearer(),
        generic: bearer(),
        allow_unauthenticated: false,
    };
    let llm = if p.diagnoser.llm.is_some() {
        "LLM configured"
    } else {
        "no LLM configured: runbook-based diagnosis"
    };
    let stack = Stack::start(Parts {
        pool: p.kb.pool.clone(),
        alerts,
        listener: TcpListener::bind("127.0.0.1:0").await?,
        slack: SlackSide::emulator(emu, &[ALERTS]),
        diagnoser: Some(p.diagnoser),
        actions: ActionsSetup {
            config: ActionsConfig {
                mode: Mode::On,
                keys: Some(Keys::parse(DEMO_SIGNING_KEY).map_err(anyhow::Error::msg)?),
                admins: vec!["U0CAROL".into()],
                default_approvers: vec!["@oncall".into(), "U0CAROL".into()],
                // Only the harmless runbook's `echo` really runs; the bundled runbooks'
                // `kubectl` actions are described, whatever cluster this machine reaches.
                live_programs: Some(vec!["echo".into()]),
                ..ActionsConfig::default()
            },
            audit_key: Some(p.audit_key),
            audit_channel: None,
        },
        metrics: p.metrics,
        metrics_listener: None,
    })
    .await?;
    anyhow::ensure!(
        emu.wait_connected(1, WAIT).await,
        "the bot did not connect to the Slack emulator"
    );
    println!("Slack emulator up; Sentinel connected over Socket Mode ({llm}).");
    Ok(stack)
}

/// The sample alert through the webhook, then an alert Grafana posts in the channel; each
/// waits for its diagnosed thread. Returns the webhook incident's thread.
async fn fire_alerts(emu: &Emulator, stack: &Stack, pool: &sqlx::PgPool) -> anyhow::Result<String> {
    let started = Instant::now();
    let resp = crate::net::client()
        .post(format!("http://{}/hooks/alertmanager", stack.webhook_addr))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(SAMPLE_ALERT)
        .send()
        .await?;
    println!(
        "POST /hooks/alertmanager (sample KubePodCrashLooping, 2 alerts) -> {} {}",
        resp.status(),
        resp.text().await?
    );
    let webhook_thread = wait_diagnosed(emu, pool, 1).await?;
    println!(
        "Incident thread with runbooks and diagnosis in {} ms.",
        started.elapsed().as_millis()
    );
    // Grafana's Slack integration posts a plain alert in the watched channel.
    emu.bot_posts(json!({
        "type": "message", "subtype": "bot_message", "bot_id": "B0GRAFANA",
        "username": "grafana", "channel": ALERTS,
        "text": "[FIRING:1] RedisMemoryHigh cart-cache (prod-eu-1 critical)\n\
                 Summary: cart-cache Redis memory above 90% of maxmemory\n\
                 Labels:\n - alertname = RedisMemoryHigh\n - service = cart-cache\n - severity = critical",
    }));
    wait_diagnosed(emu, pool, 2).await?;
    Ok(webhook_thread)
}

/// A question in the incident thread, then `/sentinel` commands; each waits for its answer.
async fn talk_to_the_bot(emu: &Emulator, webhook_thread: &str) -> anyhow::Result<()> {
    let replies_before = emu.thread(ALERTS, webhook_thread).len();
    emu.user_says(
        ALERTS,
        "U0ALICE",
        &format!("<@{BOT_USER_ID}> what should I check first?"),
        Some(webhook_thread),
    );
    let in_thread = |st: &crate::slack::emulator::state::State| {
        st.messages
            .iter()
            .filter(|m| {
                m.channel == ALERTS
                    && m.thread_ts.as_deref() == Some(webhook_thread)
                    && m.ts != webhook_thread
            })
            .count()
    };
    // Alice's question, then Sentinel's answer.
    emu.wait_for(WAIT, |st| {
        (in_thread(st) > replies_before + 1).then_some(())
    })
    .await
    .ok_or_else(|| anyhow::anyhow!("the bot did not answer the question in the thread"))?;
    for text in ["incidents", "search node disk pressure", "help"] {
        let before = emu.state().ephemerals.len();
        emu.slash_command(ALERTS, "U0BOB", "/sentinel", text);
        emu.wait_for(WAIT, |s| (s.ephemerals.len() > before).then_some(()))
            .await
            .ok_or_else(|| anyhow::anyhow!("the bot did not answer `/sentinel {text}`"))?;
        // Searches ack first, then answer: give the answer a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

/// The demo (and the playground) replay the same alerts on every run, on a new emulator
/// whose threads are gone: forget the alert channel's incidents, their alerts and actions.
async fn forget_previous_run(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let group_key = parse::alertmanager(SAMPLE_ALERT.as_bytes())?
        .first()
        .map(|a| a.group_key.clone())
        .unwrap_or_default();
    let mut tx = pool.begin().await?;
    for sql in [
        "DELETE FROM action_approvals WHERE proposal_id IN (SELECT id FROM action_proposals WHERE channel = $2 AND $1 = $1)",
        "DELETE FROM action_proposals WHERE channel = $2 AND $1 = $1",
        "DELETE FROM alerts WHERE group_key = $1 OR origin->>'channel' = $2 OR fingerprint = 'demo-service-down'
           OR group_key IN (SELECT group_key FROM incidents WHERE channel = $2)",
        "DELETE FROM incidents WHERE group_key = $1 OR channel = $2",
        "DELETE FROM storm_digests WHERE channel = $2 AND $1 = $1",
    ] {
        sqlx::query(sql)
            .bind(&group_key)
            .bind(ALERTS)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Waits until `n` incidents in the alert channel are diagnosed; returns the newest one's
/// thread.
async fn wait_diagnosed(emu: &Emulator, pool: &sqlx::PgPool, n: i64) -> anyhow::Result<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let done: Vec<(String,)> = sqlx::query_as(
            "SELECT root_ts FROM incidents WHERE channel = $1 AND diagnosed_at IS NOT NULL
             AND root_ts IS NOT NULL ORDER BY id DESC",
        )
        .bind(ALERTS)
        .fetch_all(pool)
        .await?;
        if done.len() as i64 >= n {
            let ts = done[0].0.clone();
            // The edit is recorded before `diagnosed_at`; the emulator has it by now.
            if !emu.thread(ALERTS, &ts).is_empty() {
                return Ok(ts);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the incident thread did not get its diagnosis within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
