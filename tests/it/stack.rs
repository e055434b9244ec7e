//! The whole product in one process, as `sentinel serve` runs it: the Socket Mode bot, the
//! webhook server and the incident engine with diagnosis, against the Slack emulator and
//! real Postgres. Each test asserts what the alert channel shows.

use std::time::Duration;

use sentinel::alerts::Source;
use sentinel::llm::testserver::{Reply, TestLlm};
use sentinel::slack::emulator::BOT_USER_ID;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::fixtures::{crash_loop_draft, AM_FIRING, SLACK_MSG};
use crate::helpers::slack::{mention, slash_response, Shown, WAIT};
use crate::helpers::{TestApp, ALERTS};

#[sqlx::test]
async fn webhook_alert_gets_one_thread_with_runbooks_replaced_by_the_fallback_diagnosis(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    // Ready once the database answers and Slack said hello on the socket.
    let deadline = std::time::Instant::now() + WAIT;
    let ready = loop {
        let r: Value = sentinel::net::client()
            .get(format!("http://{}/readyz", app.stack.webhook_addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["status"] == "ready" || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        ready,
        json!({"status": "ready", "database": "ok", "slack": "connected"})
    );
    assert_eq!(app.post_webhook(Source::Alertmanager, AM_FIRING).await, 200);
    let root = app.first_root().await;
    let shown_root = app.roots()[0].shown();
    assert!(shown_root.contains("KubePodCrashLooping"), "{shown_root}");
    let texts = app.wait_thread(&root, "Runbook-based diagnosis").await;
    assert_eq!(texts.len(), 1, "one reply, edited in place: {texts:?}");
    let reply = &texts[0];
    assert!(reply.contains("no LLM is configured"), "{reply}");
    assert!(reply.contains("checkout-api"), "{reply}");
    assert!(!reply.contains("Drafting a diagnosis"), "{reply}");
    let edits = app
        .emu
        .thread(ALERTS, &root)
        .iter()
        .find(|m| m.user.as_deref() == Some(BOT_USER_ID))
        .map(|m| m.edits)
        .unwrap();
    assert!(
        edits >= 1,
        "the runbook reply was edited into the diagnosis"
    );

    // The same webhook again (Alertmanager re-sends) updates, never posts a second root.
    assert_eq!(app.post_webhook(Source::Alertmanager, AM_FIRING).await, 200);
    app.settled().await;
    assert_eq!(app.roots().len(), 1);
    assert_eq!(app.thread(&root).len(), 1);
    app.shutdown().await;
}

#[sqlx::test]
async fn llm_diagnosis_replaces_the_runbook_reply(pool: PgPool) {
    let llm = TestLlm::start(Reply::json(&crash_loop_draft()))
        .await
        .unwrap();
    let app = TestApp::spawn_with_llm(pool, &llm).await;
    assert_eq!(app.post_webhook(Source::Alertmanager, AM_FIRING).await, 200);
    let root = app.first_root().await;
    let texts = app.wait_thread(&root, "Diagnosis draft").await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("checkout-api is crash looping after a release."));
    assert!(texts[0].contains("70% likely"), "{}", texts[0]);
    // Tokens were charged to this incident.
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM llm_calls WHERE incident_key LIKE 'incident-%'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(n, 1);
    app.shutdown().await;
}

#[sqlx::test]
async fn alert_message_in_a_watched_channel_is_answered_in_its_thread(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let emu = &app.emu;
    let mut event: Value = serde_json::from_str(SLACK_MSG).unwrap();
    event["channel"] = json!(ALERTS);
    let ts = emu.bot_posts(event);
    let texts = app.wait_thread(&ts, "Runbook-based diagnosis").await;
    assert!(texts[0].contains("KubePodCrashLooping"), "{}", texts[0]);
    // Sentinel answered under the alert message: it posted no root of its own.
    assert!(app
        .roots()
        .iter()
        .all(|m| m.user.as_deref() != Some(BOT_USER_ID)));

    // Ordinary chat in the channel is left alone (checked once a later mention, sent
    // after it, has been answered).
    let chat = emu.user_says(ALERTS, "U0ALICE", "lunch anyone?", None);
    let later = emu.user_says(ALERTS, "U0ALICE", &mention("node disk pressure"), None);
    app.wait_thread(&later, "Best runbook sections").await;
    assert!(app.thread(&chat).is_empty());
    assert!(emu.state().reactions.is_empty());
    app.shutdown().await;
}

#[sqlx::test]
async fn question_in_an_incident_thread_and_incident_commands(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    assert_eq!(app.post_webhook(Source::Alertmanager, AM_FIRING).await, 200);
    let root = app.first_root().await;
    app.wait_thread(&root, "Runbook-based diagnosis").await;

    app.emu.user_says(
        ALERTS,
        "U0ALICE",
        &mention("how do I roll back checkout?"),
        Some(&root),
    );
    let texts = app.wait_thread(&root, "how do I roll back checkout?").await;
    let answer = texts.last().unwrap();
    assert!(
        answer.contains("checkout/checkout-api-crashloop.md"),
        "{answer}"
    );

    let list = app
        .run_slash("U0BOB", "incidents", "KubePodCrashLooping")
        .await;
    let (id,): (i64,) = sqlx::query_as("SELECT id FROM incidents")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        list.contains(&format!("*#{id}* KubePodCrashLooping")),
        "{list}"
    );
    let missing = app.run_slash("U0BOB", "incident 999", "#999").await;
    assert!(missing.contains("There is no incident #999"), "{missing}");

    // Answered after the ack ("Looking into …").
    let asked = slash_response(
        &app.emu,
        ALERTS,
        "U0BOB",
        "ask how do I free disk space on a node?",
        "No LLM answer available",
    )
    .await;
    assert!(asked.contains("free disk space"), "{asked}");
    assert!(asked.contains("No LLM answer available"), "{asked}");
    assert!(asked.contains("platform/node-disk-pressure.md"), "{asked}");
    app.shutdown().await;
}
