//! `GET /metrics` after known traffic: the values an operator's Prometheus would read,
//! checked against what Slack (the emulator), the LLM (the test server) and Postgres saw,
//! and the exposition checked by the real `promtool`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use sentinel::alerts::Source;
use sentinel::llm::testserver::{Reply, TestLlm};
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::app::HOOK_TOKEN;
use crate::helpers::fixtures::{crash_loop_draft, AM_FIRING, SLACK_MSG};
use crate::helpers::process::alert;
use crate::helpers::slack::{mention, slash_answer, WAIT};
use crate::helpers::{TestApp, ALERTS};

/// One sample: metric name, labels, value.
#[derive(Debug)]
pub(crate) struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text exposition (our label values hold no `,` or `"`).
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("label=value");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The sum of `name`'s samples whose labels include every pair of `with`.
pub(crate) fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// `GET /metrics` over HTTP, without credentials: its content type and body.
async fn scrape(app: &TestApp) -> (String, String) {
    let r = sentinel::net::client()
        .get(format!("http://{}/metrics", app.stack.webhook_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET /metrics needs no webhook credentials");
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    (ct, r.text().await.unwrap())
}

/// Scrapes `app` until `name{with}` sums to `want` (it is recorded just before Slack
/// shows the step a test waits for), or `WAIT` passes; returns the last scrape.
pub(crate) async fn wait_metric(
    app: &TestApp,
    name: &str,
    with: &[(&str, &str)],
    want: f64,
) -> Vec<Sample> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let m = parse(&app.metrics().await);
        if sum(&m, name, with) == want || std::time::Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `promtool check metrics` on `text`: its exit status and output.
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: install Debian's `prometheus` package (scripts/test-deps.sh, which `make test` runs)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

async fn post(app: &TestApp, path: &str, token: &str, ct: &str, body: &str) -> Value {
    let r = sentinel::net::client()
        .post(format!("http://{}/hooks/{path}", app.stack.webhook_addr))
        .header("content-type", ct)
        .header("authorization", format!("Bearer {token}"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

fn alerts_in(body: &str) -> usize {
    serde_json::from_str::<Value>(body).unwrap()["alerts"]
        .as_array()
        .unwrap()
        .len()
}

/// Waits until every incident has its diagnosis.
async fn diagnosed(app: &TestApp) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM incidents WHERE diagnosed_at IS NULL")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if left == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "diagnoses still pending"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[sqlx::test]
async fn metrics_after_known_traffic(pool: PgPool) {
    let llm = TestLlm::start(Reply::json(&crash_loop_draft()))
        .await
        .unwrap();
    let app = TestApp::spawn_with_llm(pool, &llm).await;
    // Slack answers the first post with 429 (Retry-After 1 s); the client waits and retries.
    app.emu.ratelimit_next("chat.postMessage", 1, 1);

    // Three valid Alertmanager webhooks, one unauthorized, one malformed, one not JSON.
    let bodies = [
        AM_FIRING.to_string(),
        alert("DiskFull"),
        alert("HighLatency"),
    ];
    for b in &bodies {
        assert_eq!(app.post_webhook(Source::Alertmanager, b).await, 200);
    }
    let sent: usize = bodies.iter().map(|b| alerts_in(b)).sum();
    let r = post(
        &app,
        "alertmanager",
        "wrong-token",
        "application/json",
        AM_FIRING,
    )
    .await;
    assert_eq!(r["error"], "invalid_credentials");
    let r = post(
        &app,
        "alertmanager",
        HOOK_TOKEN,
        "application/json",
        "{not json",
    )
    .await;
    assert_eq!(r["error"], "malformed_json");
    let r = post(&app, "grafana", HOOK_TOKEN, "text/plain", "{}").await;
    assert_eq!(r["error"], "wrong_content_type");
    app.settled().await;
    diagnosed(&app).await;

    let (ct, text) = scrape(&app).await;
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let m = parse(&text);
    let am = [("source", "alertmanager")];
    assert_eq!(sum(&m, "sentinel_alerts_received_total", &am), sent as f64);
    assert_eq!(sum(&m, "sentinel_alerts_stored_total", &am), sent as f64);
    let rejected = "sentinel_webhook_requests_rejected_total";
    assert_eq!(sum(&m, rejected, &[("reason", "invalid_credentials")]), 1.0);
    assert_eq!(
        sum(
            &m,
            rejected,
            &[("source", "alertmanager"), ("reason", "malformed_json")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &m,
            rejected,
            &[("source", "grafana"), ("reason", "wrong_content_type")]
        ),
        1.0
    );
    assert_eq!(sum(&m, rejected, &[]), 3.0);

    // Incidents open: one root per incident in the channel, all firing.
    let incidents = app.roots().len();
    assert!(incidents >= 2, "{incidents} incidents");
    assert_eq!(sum(&m, "sentinel_incidents_open", &[]), incidents as f64);
    assert_eq!(sum(&m, "sentinel_database_up", &[]), 1.0);
    // No action ran: the audit chain is empty.
    assert_eq!(sum(&m, "sentinel_audit_chain_length", &[]), 0.0);

    // Slack: every chat.postMessage the emulator received, the 429 included.
    let posts = app
        .emu
        .state()
        .web_calls
        .iter()
        .filter(|c| *c == "chat.postMessage")
        .count();
    let method = [("method", "chat.postMessage")];
    assert_eq!(
        sum(&m, "sentinel_slack_api_calls_total", &method),
        posts as f64
    );
    assert!(posts > incidents, "roots and runbook replies: {posts}");
    assert_eq!(
        sum(&m, "sentinel_slack_api_rate_limited_total", &method),
        1.0
    );
    assert_eq!(
        sum(
            &m,
            "sentinel_slack_api_calls_total",
            &[("method", "chat.postMessage"), ("outcome", "rate_limited")]
        ),
        1.0
    );

    // One search per incident (the runbook reply's sections feed the diagnosis).
    assert_eq!(
        sum(&m, "sentinel_knowledge_search_seconds_count", &[]),
        incidents as f64
    );
    // LLM: every call the test server served, and the tokens the ledger charged.
    let (prompt, completion): (i64, i64) = sqlx::query_as(
        "SELECT sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint FROM llm_calls",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        sum(&m, "sentinel_llm_calls_total", &[]),
        llm.requests().len() as f64
    );
    assert_eq!(
        sum(
            &m,
            "sentinel_llm_calls_total",
            &[("purpose", "diagnosis"), ("outcome", "ok")]
        ),
        incidents as f64
    );
    assert_eq!(
        sum(&m, "sentinel_llm_tokens_total", &[("kind", "prompt")]),
        prompt as f64
    );
    assert_eq!(
        sum(&m, "sentinel_llm_tokens_total", &[("kind", "completion")]),
        completion as f64
    );
    assert_eq!(
        sum(&m, "sentinel_llm_incident_tokens_count", &[]),
        incidents as f64
    );
    assert_eq!(
        sum(&m, "sentinel_llm_incident_tokens_sum", &[]),
        (prompt + completion) as f64
    );
    // The price is unknown (0): the estimate is zero, one observation per incident.
    assert_eq!(
        sum(&m, "sentinel_llm_incident_cost_dollars_count", &[]),
        incidents as f64
    );
    assert_eq!(sum(&m, "sentinel_llm_incident_cost_dollars_sum", &[]), 0.0);
    assert_eq!(sum(&m, "sentinel_diagnosis_fallbacks_total", &[]), 0.0);
    // One Socket Mode connection, no reconnect yet.
    assert_eq!(sum(&m, "sentinel_slack_socket_connections_total", &[]), 1.0);
    assert_eq!(sum(&m, "sentinel_slack_socket_reconnects_total", &[]), 0.0);

    // A mention (an envelope to ack, a search), then Slack drops the socket: Sentinel
    // reconnects.
    let root = app.first_root().await;
    app.emu.user_says(
        ALERTS,
        "U0ALICE",
        &mention("how do I roll back checkout?"),
        Some(&root),
    );
    app.wait_thread(&root, "how do I roll back checkout?").await;
    // An alert Alertmanager posted into the watched channel counts as alerts of source
    // `slack`; a command's answer through its response_url counts as a Slack call.
    let mut posted: Value = serde_json::from_str(SLACK_MSG).unwrap();
    posted["channel"] = serde_json::json!(ALERTS);
    let in_post = sentinel::alerts::parse::slack_message(&posted)
        .unwrap()
        .len() as f64;
    app.emu.bot_posts(posted);
    let slack = [("source", "slack")];
    let m = wait_metric(&app, "sentinel_alerts_stored_total", &slack, in_post).await;
    assert_eq!(sum(&m, "sentinel_alerts_stored_total", &slack), in_post);
    assert_eq!(sum(&m, "sentinel_alerts_received_total", &slack), in_post);
    slash_answer(&app.emu, ALERTS, "U0BOB", "incidents", "#").await;
    let responses = app
        .emu
        .state()
        .ephemerals
        .iter()
        .filter(|e| e.via == "response_url")
        .count();
    assert_eq!(responses, 1);
    let response_url = [("method", "response_url"), ("outcome", "ok")];
    let m = wait_metric(&app, "sentinel_slack_api_calls_total", &response_url, 1.0).await;
    assert_eq!(
        sum(&m, "sentinel_slack_api_calls_total", &response_url),
        1.0
    );
    app.emu.drop_connections();
    assert!(app.emu.wait_connected(1, WAIT).await, "the bot reconnected");
    // Every envelope delivered has been acked (its ack time is recorded before the ack).
    let idle = app
        .emu
        .wait_for(WAIT, |st| st.pending.is_empty().then_some(()))
        .await;
    assert!(idle.is_some(), "envelopes still unacked");
    let text = app.metrics().await;
    let m2 = parse(&text);
    let acked = app
        .emu
        .state()
        .acks
        .iter()
        .filter(|a| a.envelope_type == "events_api")
        .count();
    assert!(acked >= 1);
    assert_eq!(
        sum(
            &m2,
            "sentinel_slack_envelope_ack_seconds_count",
            &[("kind", "events_api")]
        ),
        acked as f64
    );
    // Every ack within the 10 s bucket (the +Inf bucket equals the count).
    assert_eq!(
        sum(
            &m2,
            "sentinel_slack_envelope_ack_seconds_bucket",
            &[("kind", "events_api"), ("le", "10")]
        ),
        acked as f64
    );
    assert!(sum(&m2, "sentinel_knowledge_search_seconds_count", &[]) > incidents as f64);
    assert_eq!(
        sum(&m2, "sentinel_llm_calls_total", &[]),
        llm.requests().len() as f64
    );
    assert_eq!(sum(&m2, "sentinel_slack_socket_reconnects_total", &[]), 1.0);

    // The exposition is valid for Prometheus, and carries no secret.
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed:\n{said}\n{text}");
    for secret in [
        HOOK_TOKEN,
        app.emu.shared.cfg.bot_token.as_str(),
        app.emu.shared.cfg.app_token.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret in /metrics");
    }
    app.shutdown().await;
}

/// Runs `promtool args...` in `deploy/prometheus`; panics with its output on failure.
fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(crate::helpers::fixtures::repo_path("deploy/prometheus"))
        .output()
        .expect("promtool is missing: install Debian's `prometheus` package (scripts/test-deps.sh, which `make test` runs)");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alerting_rules_are_valid_fire_and_name_documented_metrics() {
    promtool(&["check", "rules", "sentinel-rules.yml"]);
    promtool(&["test", "rules", "sentinel-rules.test.yml"]);
    // Every metric a rule reads exists (one sample recorded in each family).
    let m = sentinel::metrics::Metrics::default();
    m.alerts_received("alertmanager", 1);
    m.alerts_stored("alertmanager", 1);
    m.webhook_rejected("grafana", "invalid_credentials");
    m.set_database_gauges(Some((0, 0)));
    m.slack_call("chat.postMessage", "rate_limited");
    m.envelope_acked("events_api", std::time::Duration::from_millis(1));
    m.socket_hello(1);
    m.diagnosis_fallback("timeout");
    m.action_run("failed");
    m.search(std::time::Duration::from_millis(5));
    m.llm_call("diagnosis", "ok", 10, 5);
    m.incident_llm_usage(15);
    let exposed: Vec<String> = parse(&m.encode()).into_iter().map(|s| s.name).collect();
    let rules = std::fs::read_to_string(crate::helpers::fixtures::repo_path(
        "deploy/prometheus/sentinel-rules.yml",
    ))
    .unwrap();
    let docs =
        std::fs::read_to_string(crate::helpers::fixtures::repo_path("docs/metrics.md")).unwrap();
    // And every metric is documented.
    for name in &exposed {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(
            docs.contains(&format!("`{family}`")),
            "{family} is not in docs/metrics.md"
        );
    }
    let names = regex::Regex::new(r"sentinel_[a-z_]+").unwrap();
    let used: Vec<&str> = names.find_iter(&rules).map(|m| m.as_str()).collect();
    assert!(used.len() >= 8, "{used:?}");
    for name in used {
        assert!(exposed.iter().any(|e| e == name), "{name} is not exposed");
        let family = name.trim_end_matches("_bucket");
        assert!(docs.contains(family), "{family} is not in docs/metrics.md");
    }
}
