//! `sentinel demo`: the main job as far as it exists, on bundled data.
//!
//! Ingests `runbooks/`, then answers the sample Alertmanager alert with the best runbook
//! sections, printed as the on-call engineer would read them. Then starts the Slack
//! emulator and the bot in this process (the bot connected through the real Socket Mode
//! client), plays a mention and slash commands, and prints the channel as a transcript.

use std::time::Duration;

use secrecy::SecretString;

use crate::cli::{App, DemoArgs};
use crate::config::SlackConfig;
use crate::knowledge::{ingest, KnowledgeBase, SearchRequest};
use crate::slack::emulator::{transcript, Emulator, EmulatorConfig, BOT_USER_ID};
use crate::slack::socket::ListenerOptions;

use std::collections::BTreeMap;

use crate::diagnosis::{RecordingSink, SlackMessage, Subject, ThreadRef};

/// The sample alert shipped with the repository (Alertmanager webhook v4).
const SAMPLE_ALERT: &str = include_str!("../tests/data/alerts/alertmanager-v4-firing.json");

pub async fn run(app: &App, a: DemoArgs) -> anyhow::Result<i32> {
    let kb = app.knowledge().await?;
    let report = ingest::ingest(
        &kb.pool,
        kb.embedder.as_ref(),
        std::slice::from_ref(&a.runbooks),
        false,
    )
    .await?;
    for f in &report.failed {
        eprintln!("skipped {}: {}", f.path, f.reason);
    }
    println!("{}", report.summary_line());

    let alert: serde_json::Value = serde_json::from_str(SAMPLE_ALERT)?;
    let label = |k: &str| {
        alert["commonLabels"][k]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let annotation = |k: &str| alert["commonAnnotations"][k].as_str().map(str::to_string);
    let name = label("alertname");
    let summary = annotation("summary").unwrap_or_default();
    let description = alert["alerts"][0]["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    println!();
    println!(
        "🔥 [FIRING] {name} in {} ({})",
        label("namespace"),
        label("cluster")
    );
    println!("   {summary} {description}");
    let hits = kb
        .search(&SearchRequest {
            text: format!("{name} {summary} {description}"),
            alert: Some(name.clone()),
            runbook_url: annotation("runbook_url"),
            k: 3,
        })
        .await?;
    println!();
    if hits.is_empty() {
        println!("No runbook matches this alert yet.");
    }
    for h in &hits {
        println!(
            "📖 {} — {}  ({}#{})",
            h.runbook_title,
            h.heading(),
            h.runbook_path,
            h.anchor
        );
        for line in h.body.lines().filter(|l| !l.trim().is_empty()).take(8) {
            println!("   {line}");
        }
        println!();
    }
    crate::demo_alert::run(&kb).await?;
    diagnosis_section(app, kb.clone(), &alert).await?;
    slack_session(kb).await?;
    Ok(0)
}

/// The diagnosis the incident thread shows for the sample alert.
async fn diagnosis_section(
    app: &App,
    kb: KnowledgeBase,
    alert: &serde_json::Value,
) -> anyhow::Result<()> {
    let subject = sample_subject(alert);
    let diagnoser = app.diagnoser(kb);
    println!(
        "🧵 Diagnosis in the thread ({}):",
        if diagnoser.llm.is_some() {
            "LLM configured"
        } else {
            "no LLM configured: runbook-based"
        }
    );
    let sink = RecordingSink::new();
    let thread = ThreadRef {
        channel: "demo".into(),
        thread_ts: None,
    };
    let (at, _) = diagnoser.run(&subject, &thread, &sink).await?;
    if let Some(m) = sink.current(&at) {
        println!("{}", plain(&m));
    }
    Ok(())
}

/// The scripted Slack session against the emulator.
async fn slack_session(kb: KnowledgeBase) -> anyhow::Result<()> {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let cfg = SlackConfig {
        app_token: SecretString::from(emu.shared.cfg.app_token.clone()),
        bot_token: SecretString::from(emu.shared.cfg.bot_token.clone()),
        api_url: emu.api_url(),
        connections: 1,
        watch_channels: vec![],
        handler_concurrency: 8,
        timeout_secs: 5,
        runbook_base_url: None,
    };
    let opts = ListenerOptions {
        connections: 1,
        reconnect_secs: 1,
        stagger_secs: 0,
        ..ListenerOptions::default()
    };
    let running = crate::serve::start(&cfg, kb, opts).await?;
    let wait = Duration::from_secs(30);
    anyhow::ensure!(
        emu.wait_connected(1, wait).await,
        "the bot did not connect to the Slack emulator"
    );
    println!("── Slack (emulated), bot connected over Socket Mode ──");

    let ts = emu.user_says(
        "C0GENERAL",
        "U0ALICE",
        &format!(
            "<@{BOT_USER_ID}> checkout-api pods keep crash looping after the deploy, what do I do?"
        ),
        None,
    );
    emu.wait_for(wait, |s| {
        s.messages
            .iter()
            .any(|m| m.thread_ts.as_deref() == Some(ts.as_str()))
            .then_some(())
    })
    .await
    .ok_or_else(|| anyhow::anyhow!("the bot did not answer the mention"))?;

    for text in ["help", "search node disk pressure"] {
        let before = emu.state().ephemerals.len();
        emu.slash_command("C0GENERAL", "U0BOB", "/sentinel", text);
        let want = if text == "help" {
            before + 1
        } else {
            before + 2
        };
        emu.wait_for(wait, |s| (s.ephemerals.len() >= want).then_some(()))
            .await
            .ok_or_else(|| anyhow::anyhow!("the bot did not answer `/sentinel {text}`"))?;
    }
    println!("{}", transcript::render(&emu.state(), "C0GENERAL"));
    let acks = emu.acks();
    let max = acks.iter().map(|a| a.latency).max().unwrap_or_default();
    println!(
        "{} envelopes acked, slowest ack {:.1} ms (Slack's deadline: 3000 ms)",
        acks.len(),
        max.as_secs_f64() * 1000.0
    );
    running.listener.shutdown().await;
    Ok(())
}

/// The sample's first alert as a diagnosis subject.
fn sample_subject(alert: &serde_json::Value) -> Subject {
    let a = &alert["alerts"][0];
    let map = |v: &serde_json::Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let labels = map(&a["labels"]);
    Subject {
        incident_key: Some(format!("demo-{}", a["fingerprint"].as_str().unwrap_or("x"))),
        alert_name: labels.get("alertname").cloned().unwrap_or_default(),
        severity: labels.get("severity").cloned(),
        labels,
        annotations: map(&a["annotations"]),
        status: a["status"].as_str().unwrap_or("firing").to_string(),
        thread_context: vec![],
    }
}

/// A Block Kit message as terminal text.
fn plain(m: &SlackMessage) -> String {
    let mut out = String::new();
    for b in m.blocks.as_array().into_iter().flatten() {
        match b["type"].as_str() {
            Some("header") => out.push_str(&format!(
                "\n== {} ==\n",
                b["text"]["text"].as_str().unwrap_or("")
            )),
            Some("section") => {
                out.push_str(&format!("{}\n\n", b["text"]["text"].as_str().unwrap_or("")))
            }
            Some("context") => {
                for e in b["elements"].as_array().into_iter().flatten() {
                    out.push_str(&format!("  ({})\n", e["text"].as_str().unwrap_or("")));
                }
                out.push('\n');
            }
            Some("divider") => out.push_str("----\n"),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
