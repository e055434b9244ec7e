//! No secret reaches a log (issue 14): `sentinel serve`, run as a process with its most
//! verbose own logging, handles an alert and a mention full of planted secrets; neither its
//! text nor its JSON logs (stdout and stderr) contain any of them, nor its own tokens.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::helpers::app::HOOK_TOKEN;
use crate::helpers::process::{serve_env, url_of, with, Replica};
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
}

#[sqlx::test]
async fn no_planted_secret_reaches_the_text_log(pool: PgPool) {
    secrets_stay_out_of_logs(pool, "text").await;
}

#[sqlx::test]
async fn no_planted_secret_reaches_the_json_log(pool: PgPool) {
    secrets_stay_out_of_logs(pool, "json").await;
}
