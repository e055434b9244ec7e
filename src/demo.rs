//! `sentinel demo`: the main job as far as it exists, on bundled data.
//!
//! Ingests `runbooks/`, then answers the sample Alertmanager alert with the best runbook
//! sections, printed as the on-call engineer would read them.

use crate::cli::{App, DemoArgs};
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
    for h in hits {
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
    Ok(0)
}
