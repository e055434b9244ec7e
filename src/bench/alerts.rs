//! `sentinel bench storm` and `sentinel bench alert-latency`: the alert pipeline driven over
//! real HTTP on 127.0.0.1 by a local load generator, on a scratch database; and that load
//! generator (Alertmanager payloads, webhook server, scratch tables), which `bench intake`
//! shares.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::app::App;
use crate::bench::{percentile, print_report_pretty, round2};
use crate::config::AlertsConfig;
use crate::http::{SourceAuth, WebhookAuth};
use crate::incidents::{Routes, StormConfig};
use crate::slack::recorder::{Call, Recorder};
use crate::stack::{Parts, SlackSide, Stack};

const TOKEN: &str = "bench-token";

#[derive(Debug, Args)]
pub struct StormArgs {
    #[arg(long, default_value_t = 10_000)]
    pub alerts: usize,
    #[arg(long, default_value_t = 500)]
    pub groups: usize,
    /// Seconds over which the notifications are spread.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Notifications per group; each resends the group's alerts so far plus new ones,
    /// as Alertmanager does.
    #[arg(long, default_value_t = 4)]
    pub notifications_per_group: usize,
    #[arg(long, default_value_t = 5)]
    pub threshold: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct StormReport {
    pub alerts_unique: usize,
    pub alert_deliveries: usize,
    pub groups: usize,
    pub alerts_in_incidents: i64,
    pub lost: i64,
    pub incidents: i64,
    pub incident_roots_posted: usize,
    pub digests_posted: usize,
    pub incidents_in_digests: i64,
    pub max_roots_per_incident: i64,
    pub groups_shown_in_slack: usize,
    pub slack_429s_answered: u64,
    pub slack_errors: i64,
    pub send_seconds: f64,
    pub all_shown_seconds: f64,
    pub shown_after_last_send_seconds: f64,
}

pub(super) fn am_payload(group: usize, alerts: std::ops::Range<usize>, name: &str) -> String {
    let items: Vec<serde_json::Value> = alerts
        .map(|i| {
            json!({
                "status": "firing",
                "labels": {"alertname": name, "group": format!("g{group}"), "instance": format!("i{i}"),
                           "severity": "critical", "namespace": "bench"},
                "annotations": {"summary": format!("{name} on g{group}"),
                                "runbook_url": "https://runbooks.example/bench"},
                "startsAt": "2026-11-21T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": format!("{group:06x}{i:010x}")
            })
        })
        .collect();
    json!({
        "version": "4", "status": "firing", "receiver": "sentinel",
        "groupKey": format!("{{}}:{{alertname=\"{name}\", group=\"g{group}\"}}"),
        "groupLabels": {"alertname": name, "group": format!("g{group}")},
        "commonLabels": {"alertname": name}, "commonAnnotations": null,
        "externalURL": "http://alertmanager:9093", "truncatedAlerts": 0, "alerts": items
    })
    .to_string()
}

pub(super) async fn scratch(app: &App, name: &str) -> anyhow::Result<PgPool> {
    let url = app.config.require_database_url()?;
    let (small, scratch) = crate::bench::scratch_pool(url, name).await?;
    small.close().await;
    let pool = crate::db::connect(&scratch, 24).await?;
    sqlx::query("TRUNCATE alerts, incident_events, incident_alerts, incidents, storm_digests RESTART IDENTITY CASCADE")
        .execute(&pool)
        .await
        .context("Failed to empty the scratch tables")?;
    Ok(pool)
}

/// The stack as `serve` runs it, on loopback, with the bench's webhook token and the Slack
/// side given (a fake port, or none for intake alone).
pub(super) async fn start_stack(
    pool: &PgPool,
    slack: SlackSide,
    diagnoser: Option<Arc<crate::diagnosis::Diagnoser>>,
    channel: &str,
    storm: StormConfig,
) -> anyhow::Result<Stack> {
    start_routed(pool, slack, diagnoser, Routes::single(channel), storm).await
}

/// [`start_stack`] with incidents routed to channels by `routes`.
pub(super) async fn start_routed(
    pool: &PgPool,
    slack: SlackSide,
    diagnoser: Option<Arc<crate::diagnosis::Diagnoser>>,
    routes: Routes,
    storm: StormConfig,
) -> anyhow::Result<Stack> {
    let alerts = AlertsConfig {
        listen: "127.0.0.1:0".parse()?,
        max_body_bytes: 8 << 20,
        auth: WebhookAuth {
            alertmanager: SourceAuth {
                bearer: Some(SecretString::from(TOKEN)),
                hmac_secret: None,
            },
            ..WebhookAuth::default()
        },
        routes: Some(routes),
        storm,
        runbook_base_url: None,
    };
    Stack::start(Parts {
        pool: pool.clone(),
        alerts,
        listener: TcpListener::bind("127.0.0.1:0").await?,
        slack,
        diagnoser,
        actions: Default::default(),
        metrics: Default::default(),
        metrics_listener: None,
    })
    .await
}

pub(super) async fn post(client: &reqwest::Client, url: &str, body: String) -> (bool, f64) {
    let t = Instant::now();
    let ok = client
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(body)
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    (ok, t.elapsed().as_secs_f64() * 1000.0)
}

const NAMES: [&str; 8] = [
    "KubePodCrashLooping",
    "KubeNodeNotReady",
    "TargetDown",
    "NodeFilesystemSpaceFillingUp",
    "KubeDeploymentReplicasMismatch",
    "CPUThrottlingHigh",
    "KubeJobFailed",
    "PrometheusRuleFailures",
];

pub async fn storm(app: &App, a: StormArgs) -> anyhow::Result<i32> {
    let pool = scratch(app, "sentinel_bench_storm").await?;
    let slack = Recorder::slack_like();
    let storm = StormConfig {
        threshold: a.threshold,
        window: Duration::from_secs(60),
    };
    let stack = start_stack(
        &pool,
        SlackSide::Port(slack.clone()),
        None,
        "C0STORM",
        storm,
    )
    .await?;
    let addr = stack.webhook_addr;

    let url = format!("http://{addr}/hooks/alertmanager");
    let per_group = a.alerts / a.groups.max(1);
    let rounds = a.notifications_per_group.max(1);
    let step = per_group.div_ceil(rounds);
    // Round r of every group, then round r+1: each notification carries all alerts so far.
    let mut sends = Vec::new();
    for r in 0..rounds {
        for g in 0..a.groups {
            let end = ((r + 1) * step).min(per_group);
            sends.push((end, am_payload(g, 0..end, NAMES[g % NAMES.len()])));
        }
    }
    let deliveries: usize = sends.iter().map(|s| s.0).sum();
    let gap = Duration::from_secs_f64(a.seconds as f64 / sends.len().max(1) as f64);
    let client = crate::net::client();
    let t = Instant::now();
    let results: Vec<(bool, f64)> = futures::stream::iter(sends.into_iter().enumerate())
        .map(|(i, (_, body))| {
            let client = &client;
            let url = &url;
            async move {
                tokio::time::sleep_until((t + gap * i as u32).into()).await;
                post(client, url, body).await
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let send_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(results.iter().all(|r| r.0), "some webhook requests failed");
    // Wait until Slack shows everything: nothing pending, nothing dirty.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM alerts WHERE processed_at IS NULL)
                  + (SELECT count(*) FROM incidents WHERE shown_version < version)
                  + (SELECT count(*) FROM storm_digests WHERE shown_version < version)",
        )
        .fetch_one(&pool)
        .await?;
        if busy == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "Slack did not catch up within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown = t.elapsed().as_secs_f64();
    stack.shutdown().await;

    let q = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await }
    };
    let in_incidents = q("SELECT count(*) FROM incident_alerts").await?;
    let incidents = q("SELECT count(*) FROM incidents").await?;
    let digested = q("SELECT count(*) FROM incidents WHERE digest_id IS NOT NULL").await?;
    let slack_errors = q("SELECT count(*) FROM incident_events WHERE kind = 'slack_error'").await?;
    let max_roots = q("SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM incident_events WHERE kind = 'posted' GROUP BY incident_id) t").await?;
    let roots = slack.roots();
    let digests: Vec<String> = roots
        .iter()
        .filter(|r| r.2.text().starts_with("🌩️"))
        .map(|r| r.1.clone())
        .collect();
    let mut shown_groups = roots.len() - digests.len();
    for ts in &digests {
        let text = slack
            .current(ts)
            .map(|m| m.text().to_string())
            .unwrap_or_default();
        // "🌩️ Alert storm: N incidents (...)"
        let n = text
            .split("Alert storm: ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        shown_groups += n;
    }
    let report = StormReport {
        alerts_unique: per_group * a.groups,
        alert_deliveries: deliveries,
        groups: a.groups,
        alerts_in_incidents: in_incidents,
        lost: (per_group * a.groups) as i64 - in_incidents,
        incidents,
        incident_roots_posted: roots.len() - digests.len(),
        digests_posted: digests.len(),
        incidents_in_digests: digested,
        max_roots_per_incident: max_roots,
        groups_shown_in_slack: shown_groups,
        slack_429s_answered: slack.throttled.load(Ordering::Relaxed),
        slack_errors,
        send_seconds: round2(send_secs),
        all_shown_seconds: round2(shown),
        shown_after_last_send_seconds: round2(shown - send_secs),
    };
    print_report_pretty(&report, a.json)?;
    Ok(
        if report.lost == 0 && shown_groups == a.groups && slack_errors == 0 {
            0
        } else {
            1
        },
    )
}

#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Chunks in the knowledge base (the `bench search` scratch database of that size is
    /// reused or built).
    #[arg(long, default_value_t = 100_000)]
    pub chunks: usize,
    #[arg(long, default_value = "tests/data/runbooks")]
    pub runbooks: std::path::PathBuf,
    /// Alerts (JSONL with `alert`, `summary`, `runbook_url`), sent one at a time.
    #[arg(long, default_value = "tests/data/eval/kube-prometheus-alerts.jsonl")]
    pub alerts: std::path::PathBuf,
    #[arg(long, default_value_t = crate::db::DEFAULT_EF_SEARCH)]
    pub ef_search: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct LatencyReport {
    pub chunks: usize,
    pub alerts: usize,
    /// From sending the webhook to the runbook reply reaching the (emulated) Slack.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From sending the webhook to the diagnosis (instant test LLM) edited into that reply.
    pub diagnosis_p50_ms: f64,
    pub diagnosis_p99_ms: f64,
    /// Diagnoses that were LLM drafts (the rest fell back to the runbook).
    pub llm_drafts: usize,
}

/// Counts runbook replies and their edits (the diagnosis), and wakes the load generator.
#[derive(Default)]
struct ReplyWatch {
    replies: std::sync::atomic::AtomicUsize,
    reply_ts: std::sync::Mutex<std::collections::HashSet<String>>,
    diagnosed: std::sync::atomic::AtomicUsize,
    drafts: std::sync::atomic::AtomicUsize,
    notify: tokio::sync::Notify,
}

impl ReplyWatch {
    /// A recorder that reports replies and their edits to this watch.
    fn recorder(self: &Arc<Self>) -> Arc<Recorder> {
        let w = self.clone();
        Recorder::observed(move |c| match c {
            Call::Reply { ts, .. } => {
                if let Ok(mut r) = w.reply_ts.lock() {
                    r.insert(ts.clone());
                }
                w.replies.fetch_add(1, Ordering::SeqCst);
                w.notify.notify_one();
            }
            Call::Update { ts, msg, .. } if w.reply_ts.lock().is_ok_and(|r| r.contains(ts)) => {
                if msg.text().contains("Diagnosis draft") {
                    w.drafts.fetch_add(1, Ordering::SeqCst);
                }
                w.diagnosed.fetch_add(1, Ordering::SeqCst);
                w.notify.notify_one();
            }
            _ => {}
        })
    }
}

/// Webhook received → runbook reply posted, one alert at a time, on a knowledge base of
/// `--chunks` chunks.
pub async fn latency(app: &App, a: LatencyArgs) -> anyhow::Result<i32> {
    let kb = crate::bench::filled_kb(app, a.chunks, &a.runbooks, a.ef_search, 16).await?;
    let pool = kb.pool.clone();
    sqlx::query("TRUNCATE alerts, incident_events, incident_alerts, incidents, storm_digests RESTART IDENTITY CASCADE")
        .execute(&pool)
        .await?;

    let watch = Arc::new(ReplyWatch::default());
    let storm = StormConfig {
        threshold: u32::MAX,
        ..StormConfig::default()
    };
    let (_llm_server, llm) = crate::bench::diagnosis::instant_llm(&pool).await?;
    let diagnoser = crate::diagnosis::Diagnoser::new(
        kb.clone(),
        Some(llm),
        crate::diagnosis::DiagnoserOptions::default(),
    );
    let slack = SlackSide::Port(watch.recorder());
    let stack = start_stack(&pool, slack, Some(Arc::new(diagnoser)), "C0LATENCY", storm).await?;
    let addr = stack.webhook_addr;
    let hook = format!("http://{addr}/hooks/alertmanager");
    let client = crate::net::client();
    let queries = crate::bench::eval::load_queries(&a.alerts)?;
    // Warm-up: model caches and index pages.
    for q in queries.iter().take(5) {
        kb.search(&crate::knowledge::SearchRequest {
            text: q.query.clone(),
            alert: q.alert.clone(),
            runbook_url: q.runbook_url.clone(),
            k: 3,
        })
        .await?;
    }
    let (mut lat, mut diag) = (Vec::new(), Vec::new());
    for (i, q) in queries.iter().enumerate() {
        let alert = q.alert.clone().unwrap_or_else(|| format!("Alert{i}"));
        let body = json!({
            "version": "4", "status": "firing", "receiver": "sentinel",
            "groupKey": format!("{{}}:{{alertname=\"{alert}\", i=\"{i}\"}}"),
            "commonAnnotations": null, "externalURL": "http://alertmanager:9093",
            "alerts": [{
                "status": "firing",
                "labels": {"alertname": alert, "severity": "critical", "i": i.to_string()},
                "annotations": {"summary": q.query, "runbook_url": q.runbook_url},
                "startsAt": "2026-11-21T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"
            }]
        })
        .to_string();
        let before = watch.replies.load(Ordering::SeqCst);
        let diagnosed = watch.diagnosed.load(Ordering::SeqCst);
        let t = Instant::now();
        let (ok, _) = post(&client, &hook, body).await;
        anyhow::ensure!(ok, "webhook refused alert {i}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut replied = None;
        while watch.diagnosed.load(Ordering::SeqCst) == diagnosed {
            if replied.is_none() && watch.replies.load(Ordering::SeqCst) > before {
                replied = Some(t.elapsed());
            }
            anyhow::ensure!(Instant::now() < deadline, "no diagnosis within 30 s");
            let _ = tokio::time::timeout(Duration::from_millis(5), watch.notify.notified()).await;
        }
        let done = t.elapsed();
        lat.push(replied.unwrap_or(done).as_secs_f64() * 1000.0);
        diag.push(done.as_secs_f64() * 1000.0);
    }
    stack.shutdown().await;
    lat.sort_by(f64::total_cmp);
    diag.sort_by(f64::total_cmp);
    let report = LatencyReport {
        chunks: a.chunks,
        alerts: lat.len(),
        p50_ms: round2(percentile(&lat, 50.0)),
        p99_ms: round2(percentile(&lat, 99.0)),
        max_ms: round2(lat.last().copied().unwrap_or(0.0)),
        diagnosis_p50_ms: round2(percentile(&diag, 50.0)),
        diagnosis_p99_ms: round2(percentile(&diag, 99.0)),
        llm_drafts: watch.drafts.load(Ordering::SeqCst),
    };
    print_report_pretty(&report, a.json)?;
    Ok(0)
}
