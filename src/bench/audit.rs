//! `sentinel bench audit`: appends to the hash chain from two "replicas" (two pools,
//! several tasks each), durable and unflushed, then `audit verify` over a large log filled
//! once in its own scratch database.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use sqlx::PgPool;

use crate::app::App;
use crate::audit::{self, chain, Actor, AuditKey, Event, Kind, StoredEvent};
use crate::bench::{peak_rss_mb, percentile, print_report_pretty, round2};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Events appended in each mode (durable, then unflushed), by all tasks together.
    #[arg(long, default_value_t = 5_000)]
    pub events: usize,
    /// Appending tasks per replica, each on its own connection.
    #[arg(long, default_value_t = 8)]
    pub tasks: usize,
    /// Events in the log `audit verify` walks (`sentinel_bench_audit_<N>`, filled once); 0 skips.
    #[arg(long, default_value_t = 1_000_000)]
    pub verify_events: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct AuditReport {
    pub replicas: usize,
    pub tasks_per_replica: usize,
    /// `append` + synchronous commit per event.
    pub durable_events: usize,
    pub durable_events_per_s: f64,
    pub durable_p50_ms: f64,
    pub durable_p99_ms: f64,
    /// `append_unflushed` + commit + `wait_durable` per event.
    pub unflushed_events: usize,
    pub unflushed_events_per_s: f64,
    pub unflushed_p50_ms: f64,
    pub unflushed_p99_ms: f64,
    pub append_errors: usize,
    /// Whether the appended log verifies as one chain of exactly all events.
    pub chain_ok: bool,
    pub chain_events: i64,
    pub verify_events: i64,
    pub verify_ok: bool,
    pub verify_seconds: f64,
    pub verify_events_per_s: f64,
    /// Time to fill the verify log this run (0 when it was reused).
    pub fill_seconds: f64,
    pub cores: usize,
    pub rss_mb: f64,
}

/// Not a secret: the bench's logs are throwaway.
fn bench_key() -> AuditKey {
    AuditKey::from_config("sentinel-bench-audit-key-not-a-secret-0123456789")
}

pub async fn run(app: &App, a: AuditArgs) -> anyhow::Result<i32> {
    let url = app.config.require_database_url()?;
    let key = bench_key();
    let tasks = a.tasks.max(1);
    let (admin, scratch) = crate::bench::scratch_pool(url, "sentinel_bench_audit").await?;
    empty(&admin).await?;
    admin.close().await;
    let replicas = [
        crate::db::connect(&scratch, tasks as u32 + 1).await?,
        crate::db::connect(&scratch, tasks as u32 + 1).await?,
    ];
    eprintln!("bench: {} durable appends ...", a.events);
    let durable = appends(&replicas, &key, tasks, a.events, false).await;
    eprintln!("bench: {} unflushed appends ...", a.events);
    let unflushed = appends(&replicas, &key, tasks, a.events, true).await;
    let chain = audit::verify(&replicas[0], &key).await?;
    let chain_ok = chain.ok() && chain.events == (2 * a.events) as i64;
    for p in &replicas {
        p.close().await;
    }

    let (mut verify_events, mut verify_ok, mut verify_secs, mut fill_secs) = (0, true, 0.0, 0.0);
    if a.verify_events > 0 {
        let name = format!("sentinel_bench_audit_{}", a.verify_events);
        let (pool, _) = crate::bench::scratch_pool(url, &name).await?;
        let t = Instant::now();
        if fill(&pool, &key, a.verify_events).await? {
            fill_secs = t.elapsed().as_secs_f64();
        }
        eprintln!("bench: verifying {} events ...", a.verify_events);
        let t = Instant::now();
        let r = audit::verify(&pool, &key).await?;
        verify_secs = t.elapsed().as_secs_f64();
        verify_events = r.events;
        verify_ok = r.ok() && r.events == a.verify_events as i64;
        pool.close().await;
    }

    let report = AuditReport {
        replicas: replicas.len(),
        tasks_per_replica: tasks,
        durable_events: durable.events,
        durable_events_per_s: round2(durable.events as f64 / durable.secs),
        durable_p50_ms: round2(percentile(&durable.latencies, 50.0)),
        durable_p99_ms: round2(percentile(&durable.latencies, 99.0)),
        unflushed_events: unflushed.events,
        unflushed_events_per_s: round2(unflushed.events as f64 / unflushed.secs),
        unflushed_p50_ms: round2(percentile(&unflushed.latencies, 50.0)),
        unflushed_p99_ms: round2(percentile(&unflushed.latencies, 99.0)),
        append_errors: durable.errors + unflushed.errors,
        chain_ok,
        chain_events: chain.events,
        verify_events,
        verify_ok,
        verify_seconds: round2(verify_secs),
        verify_events_per_s: if verify_secs > 0.0 {
            round2(verify_events as f64 / verify_secs)
        } else {
            0.0
        },
        fill_seconds: round2(fill_secs),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rss_mb: peak_rss_mb(),
    };
    print_report_pretty(&report, a.json)?;
    Ok(
        if report.chain_ok && report.verify_ok && report.append_errors == 0 {
            0
        } else {
            1
        },
    )
}

/// Empties the scratch log. The triggers refuse TRUNCATE even to the owner, who may
/// however disable them (the reason `serve`'s role must not own the table).
async fn empty(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "BEGIN;
         ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_truncate;
         TRUNCATE audit_events;
         ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_truncate;
         COMMIT;",
    )
    .execute(pool)
    .await
    .context("Failed to empty the scratch audit log")?;
    Ok(())
}

struct Appended {
    events: usize,
    secs: f64,
    /// Milliseconds per event, begin to durable, sorted.
    latencies: Vec<f64>,
    errors: usize,
}

/// `events` appends, each in its own transaction, by `tasks` tasks on each replica.
async fn appends(
    replicas: &[PgPool],
    key: &AuditKey,
    tasks: usize,
    events: usize,
    unflushed: bool,
) -> Appended {
    let left = Arc::new(AtomicUsize::new(events));
    let t = Instant::now();
    let mut handles = Vec::new();
    for (r, pool) in replicas.iter().enumerate() {
        for _ in 0..tasks {
            let (pool, key, left) = (pool.clone(), key.clone(), left.clone());
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0;
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let t = Instant::now();
                    match append_one(&pool, &key, r, unflushed).await {
                        Ok(()) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                        Err(e) => {
                            errors += 1;
                            tracing::warn!(error = %format!("{e:#}"), "bench append failed");
                        }
                    }
                }
                (lat, errors)
            }));
        }
    }
    let mut latencies = Vec::with_capacity(events);
    let mut errors = 0;
    for h in handles {
        match h.await {
            Ok((l, e)) => {
                latencies.extend(l);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    let secs = t.elapsed().as_secs_f64().max(1e-9);
    latencies.sort_by(f64::total_cmp);
    Appended {
        events: latencies.len(),
        secs,
        latencies,
        errors,
    }
}

async fn append_one(
    pool: &PgPool,
    key: &AuditKey,
    replica: usize,
    unflushed: bool,
) -> anyhow::Result<()> {
    let mut e = Event::new(
        Actor::User {
            id: "U0BENCH01".into(),
            name: "bench".into(),
        },
        Kind::RunExited,
    );
    e.incident_id = Some(1);
    e.action = Some("rollback-checkout".into());
    e.argv = Some(vec![
        "kubectl".into(),
        "rollout".into(),
        "undo".into(),
        "deployment/checkout-api".into(),
    ]);
    e.outcome = Some("exit 0".into());
    e.detail = serde_json::json!({"replica": replica, "duration_ms": 1234});
    let mut tx = pool.begin().await?;
    if unflushed {
        audit::append_unflushed(&mut tx, key, e).await?;
        tx.commit().await?;
        audit::wait_durable(pool).await?;
    } else {
        audit::append(&mut tx, key, e).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Fills the verify log with `n` chained events unless it already holds exactly that many:
/// the chain computed here, rows sent with COPY. Returns whether it filled.
async fn fill(pool: &PgPool, key: &AuditKey, n: usize) -> anyhow::Result<bool> {
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(pool)
        .await?;
    if have == n as i64 {
        return Ok(false);
    }
    empty(pool).await?;
    let start: DateTime<Utc> = "2026-11-01T00:00:00Z".parse()?;
    let mut prev = [0u8; 32];
    let batch = 50_000;
    let mut seq = 0i64;
    while (seq as usize) < n {
        let mut buf = String::with_capacity(batch * 400);
        for _ in 0..batch.min(n - seq as usize) {
            seq += 1;
            let row = synthetic(seq, start, prev);
            prev = chain::expected_hash(key, &prev, &row);
            copy_line(&mut buf, &row, &hex::encode(prev));
        }
        let mut conn = pool.acquire().await?;
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY audit_events ({}) FROM STDIN",
                crate::audit::store::COLUMNS
            ))
            .await?;
        copy.send(buf.as_bytes()).await?;
        copy.finish().await?;
        eprintln!("bench: {seq} / {n} audit events");
    }
    sqlx::query("VACUUM ANALYZE audit_events")
        .execute(pool)
        .await?;
    Ok(true)
}

/// Event `seq` of the synthetic log: a proposal's life, ten events an incident.
fn synthetic(seq: i64, start: DateTime<Utc>, prev: [u8; 32]) -> StoredEvent {
    let kinds = [
        Kind::Proposed,
        Kind::ApprovalRecorded,
        Kind::RunStarted,
        Kind::RunExited,
        Kind::VerifyPassed,
    ];
    let kind = kinds[(seq as usize) % kinds.len()];
    let user = seq % 3 != 0;
    StoredEvent {
        seq,
        at: start + chrono::Duration::milliseconds(seq * 250),
        actor: if user {
            Actor::User {
                id: format!("U0{:07}", seq % 97),
                name: format!("oncall-{}", seq % 97),
            }
        } else {
            Actor::Sentinel
        },
        kind: kind.as_str().into(),
        incident_id: Some(seq / 10 + 1),
        proposal_id: Some(seq / 5 + 1),
        action: Some("rollback-checkout".into()),
        argv: Some(vec![
            "kubectl".into(),
            "--namespace".into(),
            "checkout".into(),
            "rollout".into(),
            "undo".into(),
            "deployment/checkout-api".into(),
        ]),
        outcome: (kind == Kind::RunExited).then(|| "exit 0".into()),
        detail: chain::canonical_json(
            &serde_json::json!({"duration_ms": seq % 5000, "note": "synthetic"}),
        ),
        prev_hash: hex::encode(prev),
        hash: String::new(),
    }
}

/// One row in COPY's text format. Synthetic values hold no tab, newline, backslash, comma
/// or brace, so only NULL needs spelling out.
fn copy_line(buf: &mut String, r: &StoredEvent, hash: &str) {
    use std::fmt::Write;
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "\\N".into());
    let num = |n: Option<i64>| n.map_or_else(|| "\\N".into(), |n| n.to_string());
    let (actor_id, actor_name) = r.actor.parts();
    let argv = r
        .argv
        .as_ref()
        .map_or_else(|| "\\N".into(), |a| format!("{{{}}}", a.join(",")));
    let _ = writeln!(
        buf,
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        r.seq,
        chain::format_at(&r.at),
        actor_id,
        actor_name,
        r.kind,
        num(r.incident_id),
        num(r.proposal_id),
        opt(&r.action),
        argv,
        opt(&r.outcome),
        r.detail,
        r.prev_hash,
        hash
    );
}
