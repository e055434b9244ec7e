//! `sentinel bench intake`: webhook intake over real HTTP on 127.0.0.1, alerts stored per
//! second with de-duplication, on a scratch database.

use std::time::Instant;

use clap::Args;
use futures::StreamExt;
use serde::Serialize;

use crate::app::App;
use crate::bench::alerts::{am_payload, post, scratch, start_stack};
use crate::bench::{peak_rss_mb, percentile, print_report_pretty, round2};
use crate::incidents::StormConfig;
use crate::stack::SlackSide;

#[derive(Debug, Args)]
pub struct IntakeArgs {
    /// Unique alerts to send.
    #[arg(long, default_value_t = 100_000)]
    pub alerts: usize,
    /// Alerts per webhook request (one Alertmanager group notification).
    #[arg(long, default_value_t = 50)]
    pub per_request: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Share of requests delivered twice (Alertmanager redeliveries), de-duplicated on store.
    #[arg(long, default_value_t = 0.1)]
    pub duplicate_ratio: f64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct IntakeReport {
    pub requests: usize,
    pub alerts_sent: usize,
    pub alerts_unique: usize,
    pub alerts_stored: i64,
    pub seconds: f64,
    /// Alerts received and acknowledged per second (duplicates included).
    pub alerts_per_s: f64,
    /// New rows committed per second.
    pub stored_per_s: f64,
    pub request_p50_ms: f64,
    pub request_p99_ms: f64,
    pub errors: usize,
    pub cores: usize,
    pub rss_mb: f64,
}

pub async fn run(app: &App, a: IntakeArgs) -> anyhow::Result<i32> {
    let pool = scratch(app, "sentinel_bench_alerts").await?;
    let stack = start_stack(
        &pool,
        SlackSide::StoreOnly,
        None,
        "C0INTAKE",
        StormConfig::default(),
    )
    .await?;
    let addr = stack.webhook_addr;
    let url = format!("http://{addr}/hooks/alertmanager");
    let per = a.per_request.max(1);
    let groups = a.alerts.div_ceil(per);
    let mut bodies = Vec::with_capacity(groups + groups / 5);
    for g in 0..groups {
        let end = ((g + 1) * per).min(a.alerts);
        bodies.push((end - g * per, am_payload(g, g * per..end, "BenchAlert")));
    }
    let dup_every = if a.duplicate_ratio > 0.0 {
        (1.0 / a.duplicate_ratio).round().max(1.0) as usize
    } else {
        usize::MAX
    };
    let dups: Vec<(usize, String)> = bodies.iter().step_by(dup_every).cloned().collect();
    bodies.extend(dups);
    let requests = bodies.len();
    let alerts_sent: usize = bodies.iter().map(|b| b.0).sum();
    let client = crate::net::client_builder()
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    let t = Instant::now();
    let results: Vec<(bool, f64)> = futures::stream::iter(bodies)
        .map(|(_, body)| post(&client, &url, body))
        .buffer_unordered(a.concurrency.max(1))
        .collect()
        .await;
    let secs = t.elapsed().as_secs_f64();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts")
        .fetch_one(&pool)
        .await?;
    let mut lat: Vec<f64> = results.iter().map(|r| r.1).collect();
    lat.sort_by(f64::total_cmp);
    let report = IntakeReport {
        requests,
        alerts_sent,
        alerts_unique: a.alerts,
        alerts_stored: stored,
        seconds: round2(secs),
        alerts_per_s: round2(alerts_sent as f64 / secs),
        stored_per_s: round2(stored as f64 / secs),
        request_p50_ms: round2(percentile(&lat, 50.0)),
        request_p99_ms: round2(percentile(&lat, 99.0)),
        errors: results.iter().filter(|r| !r.0).count(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rss_mb: peak_rss_mb(),
    };
    print_report_pretty(&report, a.json)?;
    Ok(if report.errors == 0 && stored as usize == a.alerts {
        0
    } else {
        1
    })
}
