//! `sentinel demo`: the main job as far as it exists, on bundled data.
//!
//! Ingests `runbooks/`, then answers the sample Alertmanager alert with the best runbook
//! sections and the diagnosis the thread would show (LLM draft when one is configured,
//! the runbook-based diagnosis otherwise), printed as the on-call engineer would read them.

use std::collections::BTreeMap;

use crate::cli::{App, DemoArgs};
use crate::diagnosis::{RecordingSink, SlackMessage, Subject, ThreadRef};
use crate::knowledge::{ingest, SearchRequest};

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
    let subject = sample_subject(&alert);
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
    Ok(0)
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
