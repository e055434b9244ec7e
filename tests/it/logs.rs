//! What `sentinel serve`'s logs say, run as a process: no planted secret reaches them
//! (text or JSON, at its most verbose), and in JSON every line of an alert's path carries
//! the webhook's request id and, once the alert is in an incident, the incident's id.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::helpers::app::HOOK_TOKEN;
use crate::helpers::process::{alert, serve_env, url_of, with, Replica};
use crate::helpers::slack::{emulator, mention, Shown, WAIT};

/// Planted below (all fake): an AWS key pair, a Slack bot token, a GitHub token, a
/// password in a URL, a password label, a private key line.
const PLANTED: &[&str] = &[
    "AKIAQ7ZX4M2N5P8R3T6W",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYz9Kq3Lm8Np",
    "xoxb-2048-4096-SuPeRsEcReTbOtToKeN",
    "ghp_Zq8Wn3Lk5Jh7Gf9Ds2Aa4Ss6Dd8Ff0GgHhJj",
    "Sup3rS3cretGrafanaPw",
    "hunter2hunter2",
    "MIIEowIBAAKCAQEAsecretkeymaterial",
];

/// An Alertmanager notification carrying the secrets in labels, annotations and its
/// source link.
fn leaky_alert(name: &str) -> String {
    json!({
        "version": "4", "status": "firing", "receiver": "sentinel",
        "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"),
        "commonAnnotations": null, "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing",
            "labels": {
                "alertname": name, "severity": "critical",
                "iam_access_key": "AKIAQ7ZX4M2N5P8R3T6W", "password": "hunter2hunter2"
            },
            "annotations": {
                "summary": "disk full; AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYz9Kq3Lm8Np",
                "description": "bot token xoxb-2048-4096-SuPeRsEcReTbOtToKeN\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretkeymaterial\n-----END RSA PRIVATE KEY-----"
            },
            "generatorURL": "https://admin:Sup3rS3cretGrafanaPw@grafana.acme.example/graph?g0.expr=up",
            "startsAt": "2026-11-21T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"
        }]
    })
    .to_string()
}

/// Runs one replica logging as `format`, feeds it the secrets, stops it, and checks all
/// it wrote.
async fn secrets_stay_out_of_logs(pool: PgPool, format: &str) {
    let emu = emulator().await;
    let mut env = with(
        serve_env(&emu, &url_of(&pool)),
        "SENTINEL_LOG",
        "info,sentinel=trace",
    );
    if format == "json" {
        env = with(env, "SENTINEL_LOG_FORMAT", "json");
    }
    let mut replica = Replica::spawn(&env).await;
    assert!(emu.wait_connected(1, WAIT).await);
    // Slack fails the first posts: the retry and error paths log too.
    emu.fail_next("chat.postMessage", 2, 500);
    let name = format!("LeakyAlert{format}");
    assert_eq!(
        replica.post_alert(&leaky_alert(&name)).await,
        Some((200, false))
    );
    let question =
        mention("is password=hunter2hunter2 right for ghp_Zq8Wn3Lk5Jh7Gf9Ds2Aa4Ss6Dd8Ff0GgHhJj?");
    let asked = emu.user_says("C0GENERAL", "U0BOB", &question, None);
    // The alert got its thread and the mention its answer; then the diagnosis is edited in.
    emu.wait_for(WAIT, |st| {
        let root = st
            .messages
            .iter()
            .find(|m| m.thread_ts.is_none() && m.shown().contains(&name))?;
        let replied = st
            .messages
            .iter()
            .any(|m| m.thread_ts.as_deref() == Some(root.ts.as_str()));
        let answered = st
            .messages
            .iter()
            .any(|m| m.thread_ts.as_deref() == Some(asked.as_str()) && m.ts != asked);
        (replied && answered).then_some(())
    })
    .await
    .expect("the alert was shown and the mention answered");
    let deadline = std::time::Instant::now() + WAIT;
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM incidents WHERE diagnosed_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap()
        > 0
    {
        assert!(std::time::Instant::now() < deadline, "not diagnosed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(replica.stop().await.success());
    let log = replica.output();
    assert!(
        log.contains("Slack tokens accepted") && log.contains("applied alerts to incidents"),
        "its debug logs were captured:\n{log}"
    );
    let own = [
        emu.shared.cfg.bot_token.as_str(),
        emu.shared.cfg.app_token.as_str(),
        HOOK_TOKEN,
    ];
    for s in PLANTED.iter().chain(own.iter()) {
        assert!(!log.contains(s), "{s} reached the {format} log:\n{log}");
    }
    // Not a terminal: no colour codes in what a log collector reads.
    assert!(
        !log.contains('\x1b'),
        "escape codes in the {format} log:\n{log}"
    );
}

#[sqlx::test]
async fn no_planted_secret_reaches_the_text_log(pool: PgPool) {
    secrets_stay_out_of_logs(pool, "text").await;
}

#[sqlx::test]
async fn no_planted_secret_reaches_the_json_log(pool: PgPool) {
    secrets_stay_out_of_logs(pool, "json").await;
}

/// Posts an Alertmanager notification with `request_id` as its `X-Request-ID` (or none);
/// returns the status and the `X-Request-ID` Sentinel answered with.
async fn post_with_id(hooks: &str, body: &str, request_id: Option<&str>) -> (u16, String) {
    let mut req = sentinel::net::client()
        .post(format!("{hooks}/hooks/alertmanager"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {HOOK_TOKEN}"))
        .body(body.to_string());
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    let r = req.send().await.expect("the webhook answers");
    let echoed = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (r.status().as_u16(), echoed)
}

/// A JSON log line's value for `key`: its own field, or its spans' (innermost first).
fn field(line: &serde_json::Value, key: &str) -> Option<String> {
    let own = line.get("fields").and_then(|f| f.get(key));
    let spans = line
        .get("spans")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
        .rev()
        .filter_map(|s| s.get(key));
    own.into_iter().chain(spans).find_map(|v| match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[sqlx::test]
async fn every_line_of_an_alerts_path_carries_its_request_and_incident_ids(pool: PgPool) {
    let emu = emulator().await;
    let env = with(
        with(
            serve_env(&emu, &url_of(&pool)),
            "SENTINEL_LOG",
            "info,sentinel=debug",
        ),
        "SENTINEL_LOG_FORMAT",
        "json",
    );
    let mut replica = Replica::spawn(&env).await;
    assert!(emu.wait_connected(1, WAIT).await);
    // The sender's id is honoured and echoed; a missing or malformed one is replaced by a
    // fresh UUID.
    let (status, echoed) =
        post_with_id(&replica.hooks, &alert("TracedAlert"), Some("am-req-7f3a")).await;
    assert_eq!((status, echoed.as_str()), (200, "am-req-7f3a"));
    let (status, generated) = post_with_id(&replica.hooks, &alert("UntracedAlert"), None).await;
    assert_eq!(status, 200);
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let (_, replaced) =
        post_with_id(&replica.hooks, &alert("UntracedAlert"), Some("forged id")).await;
    assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");
    // Both incidents shown and diagnosed.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM incidents WHERE diagnosed_at IS NULL OR runbook_reply_ts IS NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let all: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents")
            .fetch_one(&pool)
            .await
            .unwrap();
        if all == 2 && left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not shown and diagnosed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let traced: i64 = sqlx::query_scalar(
        "SELECT id FROM incidents WHERE group_key LIKE '%TracedAlert%' AND group_key NOT LIKE '%Untraced%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(replica.stop().await.success());
    let log = replica.output();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let traced = traced.to_string();
    let ours: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            field(l, "request_id").is_some_and(|r| r.split(',').any(|r| r == "am-req-7f3a"))
        })
        .collect();
    // The path, step by step, each step in the log with the request id; from grouping on,
    // with the incident id too.
    let message = |l: &serde_json::Value| field(l, "message").unwrap_or_default();
    for (step, with_incident) in [
        ("webhook alerts stored", false),
        ("alerts applied to incident", true),
        ("incident root posted", true),
        ("runbook reply posted", true),
        ("diagnosis posted", true),
    ] {
        let line = ours
            .iter()
            .find(|l| message(l) == step)
            .unwrap_or_else(|| panic!("no `{step}` line with the request id in:\n{log}"));
        if with_incident {
            assert_eq!(
                field(line, "incident_id").as_deref(),
                Some(traced.as_str()),
                "{line}"
            );
        }
    }
    // No line about the incident lacks the request id, and no line of the request after
    // grouping lacks the incident: the Slack calls, the search and the LLM's lines included.
    let about_incident: Vec<_> = lines
        .iter()
        .filter(|l| field(l, "incident_id").as_deref() == Some(traced.as_str()))
        .collect();
    assert!(about_incident.len() >= 4, "{about_incident:#?}");
    for l in &about_incident {
        assert_eq!(
            field(l, "request_id").as_deref(),
            Some("am-req-7f3a"),
            "{l}"
        );
    }
    for l in &ours {
        let in_request = l.get("spans").and_then(|s| s.as_array()).is_some_and(|s| {
            s.iter()
                .any(|s| s.get("name").and_then(|n| n.as_str()) == Some("request"))
        });
        assert!(
            in_request || field(l, "incident_id").is_some(),
            "neither request nor incident: {l}"
        );
    }
    // The generated id travels the same way.
    assert!(
        lines
            .iter()
            .any(|l| message(l) == "alerts applied to incident"
                && field(l, "request_id").is_some_and(|r| r.contains(&generated))),
        "the generated id reached the incident's lines:\n{log}"
    );
}

/// A database outage is logged when it begins and when it ends, not once per retry: with
/// actions on (the sweeper polls every 2 s) and the engine's workers polling, a 10 s outage
/// leaves one or two warnings of Sentinel's, not one per poll.
#[tokio::test]
async fn a_database_outage_is_logged_once_not_at_every_retry() {
    use crate::helpers::pg::{PgOptions, PrivatePg};
    let pg = PrivatePg::start(PgOptions::default()).await;
    let emu = emulator().await;
    let mut env = serve_env(&emu, &pg.url(""));
    for (k, v) in [
        ("SENTINEL_ACTIONS", "on"),
        (
            "SENTINEL_ACTION_SIGNING_KEY",
            "k1:logs-test-signing-key-0123456789",
        ),
        ("SENTINEL_AUDIT_KEY", "logs-test-audit-key-0123456789abcdef"),
    ] {
        env = with(env, k, v);
    }
    let mut replica = Replica::spawn(&env).await;
    assert!(emu.wait_connected(1, WAIT).await);
    pg.stop().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    pg.start_again().await;
    let http = sentinel::net::client();
    let deadline = std::time::Instant::now() + WAIT;
    while http
        .get(format!("{}/readyz", replica.hooks))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "not ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(replica.stop().await.success());
    let log = replica.output();
    // Sentinel's own (sqlx adds a bounded few: one per pooled connection that broke, one
    // per request that waited through the outage).
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| (l.contains("WARN") || l.contains("ERROR")) && l.contains(" sentinel::"))
        .collect();
    assert_eq!(
        log.matches("database unavailable").count(),
        1,
        "the outage's start is logged once:\n{log}"
    );
    assert!(
        log.contains("database reachable again"),
        "and its end:\n{log}"
    );
    assert!(
        warnings.len() <= 2,
        "{} warnings in a 10 s outage:\n{}",
        warnings.len(),
        warnings.join("\n")
    );
}
