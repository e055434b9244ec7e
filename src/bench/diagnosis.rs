//! `sentinel bench diagnosis`: subject in -> diagnosis posted, with an instantly answering
//! test LLM; and the subjects and test LLM that `eval fallback` and `bench alert-latency`
//! share.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::json;

use crate::app::App;
use crate::bench::eval::{load_queries, EvalQuery};
use crate::bench::{self, percentile, print_report, round2, ScratchArgs};
use crate::diagnosis::{Diagnoser, DiagnoserOptions, Draft, Subject};
use crate::llm::testserver::{Reply, TestLlm};
use crate::llm::{LlmClient, TokenLedger};
use crate::slack::recorder::Recorder;
use crate::slack::{Message, SlackPort};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub scratch: ScratchArgs,
    /// Passes over the alerts.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub chunks: usize,
    pub runs: usize,
    /// Subject in -> LLM diagnosis rendered and posted (placeholder + edit), test LLM.
    pub llm_p50_ms: f64,
    pub llm_p99_ms: f64,
    /// The same without an LLM (runbook-based diagnosis).
    pub fallback_p50_ms: f64,
    pub fallback_p99_ms: f64,
    /// Runs whose posted message was an LLM draft (should be all of them).
    pub llm_drafts: usize,
}

/// The subject for one eval line: alert name, runbook URL and the query text.
pub fn subject_of(q: &EvalQuery) -> Subject {
    let mut annotations = BTreeMap::from([("summary".to_string(), q.query.clone())]);
    if let Some(u) = &q.runbook_url {
        annotations.insert("runbook_url".into(), u.clone());
    }
    let name = q.alert.clone().unwrap_or_default();
    Subject {
        incident_key: None,
        labels: BTreeMap::from([("alertname".to_string(), name.clone())]),
        alert_name: name,
        annotations,
        severity: None,
        status: "firing".into(),
        thread_context: vec![],
    }
}

/// Diagnoses `s` and posts it as the incident engine does: a reply in the thread, edited
/// into the diagnosis (in memory, so only Sentinel's own time is measured).
async fn diagnose_and_post(
    d: &Diagnoser,
    s: &Subject,
    slack: &Recorder,
) -> anyhow::Result<crate::diagnosis::Outcome> {
    let reply = slack.reply("CBENCH", "1.0", &Message::default()).await?;
    let out = d.diagnose(s).await;
    slack.update("CBENCH", &reply, &out.message).await?;
    Ok(out)
}

/// A valid diagnosis, citing the first section: what the test LLM answers in the benches.
pub fn draft_answer() -> Reply {
    Reply::json(&json!({
        "summary": {"text": "The alert's runbook explains the condition.", "sources": ["S1", "ALERT"]},
        "likely_causes": [{"cause": "See the runbook's Meaning section", "confidence": 0.5, "sources": ["S1"]}],
        "next_checks": [{"check": "Follow the runbook's Diagnosis section", "sources": ["S1"]}],
        "proposed_actions": []
    }))
}

/// A test LLM server that answers every diagnosis at once with a valid draft citing S1,
/// and a client for it: what the latency benchmarks measure around.
pub async fn instant_llm(pool: &sqlx::PgPool) -> anyhow::Result<(TestLlm, Arc<LlmClient>)> {
    let server = TestLlm::start(draft_answer()).await?;
    let llm = Arc::new(LlmClient::new(
        server.config(Duration::from_secs(5)),
        TokenLedger::postgres(pool.clone()),
    ));
    Ok((server, llm))
}

pub async fn run(app: &App, a: BenchArgs) -> anyhow::Result<i32> {
    let kb = a.scratch.filled_kb(app, 8).await?;
    let pool = kb.pool.clone();
    let (_server, llm) = instant_llm(&pool).await?;
    let with_llm = Diagnoser::new(kb.clone(), Some(llm), DiagnoserOptions::default());
    let without = Diagnoser::new(kb, None, DiagnoserOptions::default());
    let queries = load_queries(&a.scratch.queries)?;
    anyhow::ensure!(
        !queries.is_empty(),
        "no alerts in {}",
        a.scratch.queries.display()
    );
    // Warm-up: model caches, index pages, connections.
    for q in queries.iter().take(10) {
        with_llm.diagnose(&subject_of(q)).await;
    }
    let (mut llm_lat, mut fb_lat, mut drafts) = (Vec::new(), Vec::new(), 0);
    for round in 0..a.rounds.max(1) {
        for (i, q) in queries.iter().enumerate() {
            let mut s = subject_of(q);
            s.incident_key = Some(format!("bench-{round}-{i}"));
            let slack = Recorder::default();
            let t = Instant::now();
            let out = diagnose_and_post(&with_llm, &s, &slack).await?;
            llm_lat.push(t.elapsed().as_secs_f64() * 1000.0);
            drafts += usize::from(matches!(out.draft, Draft::Llm(_)));
            let t = Instant::now();
            diagnose_and_post(&without, &s, &slack).await?;
            fb_lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    llm_lat.sort_by(f64::total_cmp);
    fb_lat.sort_by(f64::total_cmp);
    let report = BenchReport {
        chunks: bench::count_chunks(&pool).await?,
        runs: llm_lat.len(),
        llm_p50_ms: round2(percentile(&llm_lat, 50.0)),
        llm_p99_ms: round2(percentile(&llm_lat, 99.0)),
        fallback_p50_ms: round2(percentile(&fb_lat, 50.0)),
        fallback_p99_ms: round2(percentile(&fb_lat, 99.0)),
        llm_drafts: drafts,
    };
    print_report(&report, a.json)?;
    Ok(0)
}
