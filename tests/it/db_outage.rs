//! A database outage in the middle of an alert storm, as an on-call team lives it:
//! Postgres stops for 30 s while senders keep posting. Webhooks get 503 + `Retry-After`
//! at once, `/readyz` says not ready, a person who mentions the bot or runs `/sentinel`
//! is told the database is unavailable; the senders re-send (as Alertmanager does), and
//! once Postgres is back every alert that got a 2xx is stored and every incident shown.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use sentinel::slack::emulator::BOT_USER_ID;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::app::HOOK_TOKEN;
use crate::helpers::pg::{PgOptions, PrivatePg};
use crate::helpers::slack::{mention, Shown};
use crate::helpers::{TestApp, ALERTS};

/// The outage the issue asks for.
const OUTAGE: Duration = Duration::from_secs(30);
/// Incident groups (below the storm threshold of 5, so each gets its own thread).
const GROUPS: usize = 4;
/// Alerts per webhook body; each body's alerts are new (distinct fingerprints).
const PER_BODY: usize = 5;

fn body(group: usize, seq: usize) -> String {
    let alertname = format!("DbOutageStorm{group}");
    let alerts: Vec<Value> = (0..PER_BODY)
        .map(|i| {
            json!({
                "status": "firing",
                "labels": {"alertname": alertname, "service": format!("svc-{group}"), "pod": format!("pod-{seq}-{i}"), "severity": "critical"},
                "annotations": {"summary": "storm"},
                "startsAt": "2026-11-30T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": fingerprint(group, seq, i),
            })
        })
        .collect();
    json!({
        "version": "4", "status": "firing", "receiver": "sentinel",
        "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"),
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname, "severity": "critical"},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    })
    .to_string()
}

fn fingerprint(group: usize, seq: usize, i: usize) -> String {
    format!("{group:02x}{seq:06x}{i:02x}")
}

#[derive(Default)]
struct Tally {
    /// Fingerprints of alerts whose body got a 2xx.
    accepted: BTreeSet<String>,
    bodies_accepted: usize,
    /// When each body got its 2xx.
    accepted_at: Vec<Instant>,
    /// 503 answers, and how many of them carried `Retry-After` and the JSON code.
    refused: usize,
    refused_well: usize,
    /// The slowest 503 (a sender must not hang on a dead database).
    slowest_refusal: Duration,
    /// Any other answer: a defect.
    other: Vec<String>,
}

/// One Alertmanager-like sender: a new body every 100 ms until `stop`; a refused body is
/// re-sent after `Retry-After` (capped at 1 s here) until it gets a 2xx.
async fn sender(addr: String, group: usize, stop: Arc<AtomicBool>, tally: Arc<Mutex<Tally>>) {
    let client = sentinel::net::client();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let b = body(group, seq);
        loop {
            let started = Instant::now();
            let resp = client
                .post(format!("http://{addr}/hooks/alertmanager"))
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {HOOK_TOKEN}"))
                .body(b.clone())
                .send()
                .await;
            let took = started.elapsed();
            let Ok(resp) = resp else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let json: Value = resp.json().await.unwrap_or(Value::Null);
            {
                let mut t = tally.lock().unwrap();
                if status == 200 {
                    t.bodies_accepted += 1;
                    t.accepted_at.push(Instant::now());
                    t.accepted
                        .extend((0..PER_BODY).map(|i| fingerprint(group, seq, i)));
                    break;
                }
                if status == 503 {
                    t.refused += 1;
                    t.slowest_refusal = t.slowest_refusal.max(took);
                    if retry_after.is_some() && json["error"].is_string() {
                        t.refused_well += 1;
                    }
                } else {
                    t.other.push(format!("{status} {json}"));
                }
            }
            let wait = Duration::from_secs(retry_after.unwrap_or(1)).min(Duration::from_secs(1));
            tokio::time::sleep(wait).await;
        }
        seq += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn readyz(addr: &str) -> (u16, Value) {
    let r = sentinel::net::client()
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Distinct fingerprints stored, and the incidents Slack is not yet up to date with.
async fn stored(pool: &PgPool) -> anyhow::Result<(BTreeSet<String>, i64)> {
    let fps: Vec<String> = sqlx::query_scalar("SELECT DISTINCT fingerprint FROM alerts")
        .fetch_all(pool)
        .await?;
    let behind: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM alerts WHERE processed_at IS NULL)
              + (SELECT count(*) FROM incidents WHERE shown_version < version)",
    )
    .fetch_one(pool)
    .await?;
    Ok((fps.into_iter().collect(), behind))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30s_database_outage_mid_storm_loses_no_alert_that_got_a_2xx() {
    let pg = PrivatePg::start(PgOptions::default()).await;
    let pool = sentinel::db::connect_and_migrate(&SecretString::from(pg.url("")))
        .await
        .unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let addr = app.stack.webhook_addr.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let senders: Vec<_> = (0..GROUPS)
        .map(|g| tokio::spawn(sender(addr.clone(), g, stop.clone(), tally.clone())))
        .collect();

    // The storm is under way and stored.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        tally.lock().unwrap().bodies_accepted > 0,
        "storm accepted before the outage"
    );
    assert_eq!(readyz(&addr).await.0, 200);

    pg.stop().await;
    let down_at = Instant::now();
    let accepted_before = tally.lock().unwrap().bodies_accepted;

    // Within a few seconds the whole process knows.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, ready) = readyz(&addr).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not_ready", "{ready}");
    assert_eq!(ready["database"], "unreachable", "{ready}");
    assert_eq!(ready["slack"], "connected", "Socket Mode stays up: {ready}");

    // A person asking the bot is told, not ignored.
    let emu = &app.emu;
    let before = emu.state().ephemerals.len();
    emu.user_says(ALERTS, "U0ALICE", &mention("is checkout down?"), None);
    let told = emu
        .wait_for(Duration::from_secs(5), |st| {
            st.ephemerals
                .iter()
                .skip(before)
                .find(|e| e.user == "U0ALICE")
                .cloned()
        })
        .await
        .expect("the mention is answered during the outage");
    let text = told.shown();
    assert!(text.contains("database is unavailable"), "{text}");
    assert!(text.contains("degraded"), "{text}");
    let before = emu.state().ephemerals.len();
    emu.slash_command(ALERTS, "U0BOB", "/sentinel", "incidents");
    let answer = emu
        .wait_for(Duration::from_secs(5), |st| {
            st.ephemerals
                .iter()
                .skip(before)
                .find(|e| e.via == "response_url")
                .cloned()
        })
        .await
        .expect("the command is answered during the outage");
    assert!(
        answer.shown().contains("database is unavailable"),
        "{answer:?}"
    );

    // A webhook during the outage: 503 at once, with Retry-After and a JSON code.
    let started = Instant::now();
    let r = sentinel::net::client()
        .post(format!("http://{addr}/hooks/alertmanager"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {HOOK_TOKEN}"))
        .body(body(99, 0))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let refusal: Value = r.json().await.unwrap();
    assert_eq!(refusal["error"], "database_unavailable", "{refusal}");
    assert!(took < Duration::from_secs(1), "answered in {took:?}");

    tokio::time::sleep(OUTAGE.saturating_sub(down_at.elapsed())).await;
    let accepted_during = tally.lock().unwrap().bodies_accepted - accepted_before;
    pg.start_again().await;
    let up_at = Instant::now();

    // The storm goes on a little after recovery, then the senders stop taking new bodies
    // and finish re-sending what was refused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        tokio::time::timeout(Duration::from_secs(60), s)
            .await
            .expect("every refused body is accepted after recovery")
            .unwrap();
    }
    let senders_done = up_at.elapsed();

    // Every accepted alert is stored, and every incident is shown, up to date.
    let t = std::mem::take(&mut *tally.lock().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored_fps = loop {
        if let Ok((fps, 0)) = stored(&pool).await {
            if t.accepted.is_subset(&fps) {
                break fps;
            }
        }
        assert!(
            Instant::now() < deadline,
            "alerts not caught up within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let caught_up = up_at.elapsed();
    let lost: Vec<_> = t.accepted.difference(&stored_fps).collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(
        t.other.is_empty(),
        "answers other than 200/503: {:?}",
        t.other
    );
    assert!(t.refused > 0, "the outage was seen by the senders");
    assert_eq!(
        t.refused, t.refused_well,
        "every 503 has Retry-After and a JSON code"
    );
    assert!(
        t.slowest_refusal < Duration::from_secs(11),
        "no refusal waits out a pool timeout: {:?}",
        t.slowest_refusal
    );

    // What the channel shows: one thread per incident, counting every accepted alert.
    let roots: Vec<_> = app
        .roots()
        .into_iter()
        .filter(|m| m.user.as_deref() == Some(BOT_USER_ID))
        .collect();
    assert_eq!(roots.len(), GROUPS, "one thread per incident: {roots:?}");
    for g in 0..GROUPS {
        let n = t
            .accepted
            .iter()
            .filter(|f| f.starts_with(&format!("{g:02x}")))
            .count();
        let name = format!("DbOutageStorm{g}");
        let root = roots
            .iter()
            .find(|m| m.shown().contains(&name))
            .unwrap_or_else(|| panic!("no thread for {name}"));
        let shown = root.shown();
        assert!(
            shown.contains(&format!("({n} of {n} alerts firing)")),
            "{name} shows its {n} alerts: {shown}"
        );
    }
    let first_accept = t
        .accepted_at
        .iter()
        .filter(|a| **a > up_at)
        .min()
        .map(|a| a.duration_since(up_at).as_secs_f64())
        .unwrap_or(f64::NAN);
    eprintln!(
        "db outage: {} alerts accepted in {} bodies ({} during the outage), {} refusals (503), lost 0, \
         slowest refusal {:?}; Postgres back -> first 2xx {first_accept:.2}s, senders done {:.1}s, all incidents shown {:.1}s",
        t.accepted.len(),
        t.bodies_accepted,
        accepted_during,
        t.refused,
        t.slowest_refusal,
        senders_done.as_secs_f64(),
        caught_up.as_secs_f64()
    );
    app.shutdown().await;
}
