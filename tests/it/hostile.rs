//! Hostile input through every path (issue 14): secrets planted in an alert, a runbook,
//! Slack users' text and the LLM's answers never reach Slack (posts and their notification
//! text, edits, private answers) or the LLM; nothing from outside pings, and no link hides
//! its host behind its label; bidirectional and zero-width controls never survive.

use std::sync::Arc;

use regex::Regex;
use sentinel::alerts::Source;
use sentinel::llm::testserver::{Reply, TestLlm};
use sentinel::slack::emulator::State;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::app::{TestApp, ALERTS};
use crate::helpers::embed::HashEmbedder;
use crate::helpers::kb::ingested;
use crate::helpers::slack::{mention, WAIT};

/// One secret of each kind, planted below (all fake).
const SECRETS: &[&str] = &[
    "AKIAQ7ZX4M2N5P8R3T6W",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYz9Kq3Lm8Np",
    "xoxb-2048-4096-SuPeRsEcReTbOtToKeN",
    "ghp_Zq8Wn3Lk5Jh7Gf9Ds2Aa4Ss6Dd8Ff0GgHhJj",
    "Sup3rS3cretGrafanaPw",
    "hunter2hunter2",
    "MIIEowIBAAKCAQEAsecretkeymaterial",
    "glpat-AbCdEfGhIjKlMnOpQrSt",
];

/// A runbook whose text carries secrets, a ping, a disguised link and a bidi override.
const RUNBOOK: &str = "---
title: Hostile alert notes
alerts: [HostileAlert]
---
# Hostile alert notes

## Meaning

The app reads `export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYz9Kq3Lm8Np` at start.
<!channel> read the [Break-glass procedure](https://evil.example/steal) first. \u{202E}kcatta\u{202C}

## Diagnosis

Log in with glpat-AbCdEfGhIjKlMnOpQrSt and this key:

-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAsecretkeymaterial
-----END RSA PRIVATE KEY-----

## Mitigation

Restart the app with password=hunter2hunter2 once the disk is clean.
";

/// An Alertmanager notification whose labels, annotations and source link carry secrets,
/// pings, a disguised link and invisible characters.
fn hostile_alert() -> String {
    json!({
        "version": "4", "status": "firing", "receiver": "sentinel",
        "groupKey": "{}:{alertname=\"HostileAlert\"}",
        "commonAnnotations": null, "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing",
            "labels": {
                "alertname": "HostileAlert", "severity": "critical",
                "iam_access_key": "AKIAQ7ZX4M2N5P8R3T6W",
                "pod": "api-1\u{202E}exe.gnp\u{200B}"
            },
            "annotations": {
                "summary": "<!channel> disk full; password=hunter2hunter2 <https://evil.example|Grafana> <@U0ALICE>",
                "description": "bot token xoxb-2048-4096-SuPeRsEcReTbOtToKeN <!here|here>"
            },
            "generatorURL": "https://admin:Sup3rS3cretGrafanaPw@grafana.acme.example/graph?g0.expr=up",
            "startsAt": "2026-11-21T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"
        }]
    })
    .to_string()
}

/// Everything Slack holds that a person could see: every message's text and blocks as
/// posted, every edit, every private answer.
fn everything_shown(st: &State) -> String {
    let mut out = String::new();
    let mut add = |text: &str, blocks: &Option<Value>| {
        out.push_str(text);
        out.push('\n');
        if let Some(b) = blocks {
            out.push_str(&b.to_string());
            out.push('\n');
        }
    };
    for m in &st.messages {
        if m.user.as_deref() == Some(sentinel::slack::emulator::BOT_USER_ID) {
            add(&m.text, &m.blocks);
        }
    }
    for e in &st.edits {
        add(&e.text, &e.blocks);
        add(&e.before_text, &e.before_blocks);
    }
    for e in &st.ephemerals {
        add(&e.text, &e.blocks);
    }
    out
}

/// No secret, ping, disguised link or invisible character in `shown`.
fn assert_safe(shown: &str, what: &str) {
    for s in SECRETS {
        if let Some(at) = shown.find(s) {
            let from = shown[..at]
                .char_indices()
                .rev()
                .nth(200)
                .map_or(0, |(i, _)| i);
            panic!("{s} reached {what}: …{}", &shown[from..(at + s.len())]);
        }
    }
    for ping in [
        "<!channel",
        "<!here",
        "<!everyone",
        "<!subteam",
        "<@U0ALICE",
    ] {
        assert!(!shown.contains(ping), "{ping} reached {what}");
    }
    for c in ['\u{202E}', '\u{202C}', '\u{200B}', '\u{2066}', '\u{2069}'] {
        assert!(!shown.contains(c), "U+{:04X} reached {what}", c as u32);
    }
    let link = Regex::new(r"<(https?://[^|>\s]+)\|([^>]*)>").unwrap();
    for c in link.captures_iter(shown) {
        let host = url::Url::parse(&c[1])
            .unwrap()
            .host_str()
            .unwrap()
            .to_string();
        if host == "slack.com" {
            continue; // Sentinel's own thread links
        }
        assert!(
            c[2].contains(host.trim_start_matches("www.")),
            "the link to {} is labelled {:?} in {what}",
            &c[1],
            &c[2]
        );
    }
}

/// The hostile runbook, beside the bundled ones.
async fn add_hostile_runbook(pool: &PgPool) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hostile.md"), RUNBOOK).unwrap();
    ingested(pool, Arc::new(HashEmbedder), &[dir.path().to_path_buf()]).await;
}

/// The incident thread, the bot's answer to a question in it, and `/sentinel` answers.
async fn exercise_every_path(app: &TestApp, diagnosis_needle: &str) {
    add_hostile_runbook(&app.pool).await;
    assert_eq!(
        app.post_webhook(Source::Alertmanager, &hostile_alert())
            .await,
        200
    );
    let root = app.first_root().await;
    app.wait_thread(&root, diagnosis_needle).await;
    // A question in the thread, carrying secrets and pings of its own.
    let before = app.thread(&root).len();
    app.emu.user_says(
        ALERTS,
        "U0BOB",
        &mention("is password=hunter2hunter2 still right? <!channel> ghp_Zq8Wn3Lk5Jh7Gf9Ds2Aa4Ss6Dd8Ff0GgHhJj"),
        Some(&root),
    );
    app.emu
        .wait_for(WAIT, |st| {
            let n = st
                .messages
                .iter()
                .filter(|m| m.thread_ts.as_deref() == Some(root.as_str()) && m.ts != root)
                .filter(|m| m.user.as_deref() == Some(sentinel::slack::emulator::BOT_USER_ID))
                .count();
            (n > before).then_some(())
        })
        .await
        .expect("the question was answered");
    app.run_slash(
        "U0BOB",
        "search break-glass password=hunter2hunter2 AKIAQ7ZX4M2N5P8R3T6W",
        "Best runbook sections",
    )
    .await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM incidents ORDER BY id LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    app.run_slash("U0BOB", &format!("incident {id}"), "HostileAlert")
        .await;
}

#[sqlx::test]
async fn without_an_llm_nothing_hostile_reaches_slack(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    exercise_every_path(&app, "Runbook-based diagnosis").await;
    let shown = everything_shown(&app.emu.state());
    // The paths were taken: root, runbook reply, fallback, answer, search, incident.
    for seen in [
        "HostileAlert",
        "Runbook sections that match this alert",
        "Runbook-based diagnosis",
        "Best runbook sections",
        "Break-glass procedure (evil.example)",
        "grafana.acme.example",
    ] {
        assert!(shown.contains(seen), "{seen} not shown:\n{shown}");
    }
    assert_safe(&shown, "Slack");
    // Nor did the runbook's secrets reach the database.
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM chunks")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let stored = bodies.join("\n");
    for s in SECRETS {
        assert!(!stored.contains(s), "{s} reached the database");
    }
    app.shutdown().await;
}

#[sqlx::test]
async fn the_llm_sees_no_secret_and_its_hostile_answers_are_neutralised(pool: PgPool) {
    let llm = TestLlm::start(Reply::json(&json!({
        "answer": "Run with password=hunter2hunter2 <!channel> see <https://evil.example|the runbook> xoxb-2048-4096-SuPeRsEcReTbOtToKeN",
        "sources": ["S1"]
    })))
    .await
    .unwrap();
    llm.push([Reply::json(&json!({
        "summary": {"text": "Disk full <!here> key AKIAQ7ZX4M2N5P8R3T6W, see <https://evil.example|Runbook> \u{202E}kcatta", "sources": ["S1", "ALERT"]},
        "likely_causes": [{"cause": "glpat-AbCdEfGhIjKlMnOpQrSt leaked", "confidence": 0.5, "sources": ["S1"]}],
        "next_checks": [{"check": "[Break-glass procedure](https://evil.example/steal)", "sources": ["S1"]}],
        "proposed_actions": []
    }))]);
    let app = TestApp::spawn_with_llm(pool, &llm).await;
    exercise_every_path(&app, "Diagnosis draft").await;
    let shown = everything_shown(&app.emu.state());
    assert!(shown.contains("Diagnosis draft: HostileAlert"), "{shown}");
    assert_safe(&shown, "Slack");
    let prompts = llm.all_prompt_text();
    assert!(prompts.contains("HostileAlert"), "the LLM was asked");
    for s in SECRETS {
        assert!(!prompts.contains(s), "{s} reached the LLM");
    }
    app.shutdown().await;
}
