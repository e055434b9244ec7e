//! The whole product in one process, as `sentinel serve` runs it: the Socket Mode bot, the
//! webhook server and the incident engine with diagnosis, against the Slack emulator and
//! real Postgres. Each test asserts what the alert channel shows.

use crate::helpers::slack as slack_common;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use sentinel::config::AlertsConfig;
use sentinel::diagnosis::{Diagnoser, DiagnoserOptions};
use sentinel::http::{SourceAuth, WebhookAuth};
use sentinel::incidents::{Routes, StormConfig};
use sentinel::llm::testserver::{Reply, TestLlm};
use sentinel::llm::{LlmClient, TokenLedger};
use sentinel::slack::emulator::state::{Message, State};
use sentinel::slack::emulator::{Emulator, BOT_USER_ID};
use sentinel::stack::{Parts, SlackSide, Stack};
use serde_json::{json, Value};
use slack_common::*;
use sqlx::PgPool;
use tokio::net::TcpListener;

const ALERTS: &str = "C0ALERTS";
const TOKEN: &str = "hook-token";
const SAMPLE: &str = include_str!("../data/alerts/alertmanager-v4-firing.json");

fn alerts_config() -> AlertsConfig {
    AlertsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body_bytes: 1 << 20,
        auth: WebhookAuth {
            alertmanager: SourceAuth {
                bearer: Some(SecretString::from(TOKEN)),
                hmac_secret: None,
            },
            ..WebhookAuth::default()
        },
        routes: Some(Routes::single(ALERTS)),
        storm: StormConfig::default(),
        runbook_base_url: Some("https://runbooks.example.com".into()),
    }
}

async fn stack(emu: &Emulator, pool: PgPool, llm: Option<&TestLlm>) -> Stack {
    let kb = knowledge(pool.clone()).await;
    let client = llm.map(|l| {
        Arc::new(LlmClient::new(
            l.config(Duration::from_secs(5)),
            TokenLedger::postgres(pool.clone()),
        ))
    });
    let diagnoser = Diagnoser::new(
        kb,
        client,
        DiagnoserOptions {
            llm_deadline: Duration::from_secs(10),
            runbook_base_url: Some("https://runbooks.example.com".into()),
            ..DiagnoserOptions::default()
        },
    );
    let s = Stack::start(Parts {
        pool,
        alerts: alerts_config(),
        listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        slack: SlackSide::Bot {
            config: slack_config(emu, 1, &[ALERTS]),
            listener: test_listener(1),
        },
        diagnoser: Some(Arc::new(diagnoser)),
    })
    .await
    .unwrap();
    assert!(emu.wait_connected(1, WAIT).await, "bot did not connect");
    s
}

async fn post_sample(s: &Stack) -> u16 {
    sentinel::net::client()
        .post(format!("http://{}/hooks/alertmanager", s.webhook_addr))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(SAMPLE)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Top-level messages in the alert channel.
fn roots_in(st: &State) -> Vec<Message> {
    st.messages
        .iter()
        .filter(|m| m.channel == ALERTS && m.thread_ts.as_ref().is_none_or(|t| t == &m.ts))
        .cloned()
        .collect()
}

fn roots(emu: &Emulator) -> Vec<Message> {
    roots_in(&emu.state())
}

/// Sentinel's replies in a thread, as shown.
fn replies_in(st: &State, root: &str) -> Vec<String> {
    st.messages
        .iter()
        .filter(|m| {
            m.channel == ALERTS
                && m.thread_ts.as_deref() == Some(root)
                && m.ts != root
                && m.user.as_deref() == Some(BOT_USER_ID)
        })
        .map(shown)
        .collect()
}

fn replies(emu: &Emulator, root: &str) -> Vec<String> {
    replies_in(&emu.state(), root)
}

/// The first root message's ts, once there is one.
async fn first_root(emu: &Emulator) -> String {
    emu.wait_for(WAIT, |st| roots_in(st).first().map(|m| m.ts.clone()))
        .await
        .expect("root message posted")
}

/// Sentinel's replies (root excluded) once one of them contains `needle`.
async fn wait_reply(emu: &Emulator, root: &str, needle: &str) -> Vec<String> {
    let found = emu
        .wait_for(WAIT, |st| {
            let texts = replies_in(st, root);
            texts.iter().any(|t| t.contains(needle)).then_some(texts)
        })
        .await;
    found.unwrap_or_else(|| panic!("no reply containing {needle:?}: {:?}", replies(emu, root)))
}

/// Waits until every received alert is processed and every incident is shown in Slack.
async fn settled(pool: &PgPool) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM alerts WHERE processed_at IS NULL)
                  + (SELECT count(*) FROM incidents WHERE shown_version < version)",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if pending == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "alerts still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `/sentinel TEXT` as Bob and returns the first private answer containing `needle`.
/// Only answers that arrive after the command count: an earlier answer may
/// contain the needle too (a thread link's timestamp can hold "999").
async fn command_answer(emu: &Emulator, text: &str, needle: &str) -> String {
    let before = emu.state().ephemerals.len();
    emu.slash_command(ALERTS, "U0BOB", "/sentinel", text);
    emu.wait_for(WAIT, |st| {
        st.ephemerals
            .iter()
            .skip(before)
            .find(|e| e.text.contains(needle))
            .map(|e| e.text.clone())
    })
    .await
    .unwrap_or_else(|| panic!("`/sentinel {text}` was not answered"))
}

/// What a person reads: the blocks' text when there are blocks, else the text.
fn shown(m: &Message) -> String {
    match m.blocks.as_ref().and_then(Value::as_array) {
        Some(b) if !b.is_empty() => sentinel::slack::blocks::plain_text(b),
        _ => m.text.clone(),
    }
}

#[sqlx::test]
async fn webhook_alert_gets_one_thread_with_runbooks_replaced_by_the_fallback_diagnosis(
    pool: PgPool,
) {
    let emu = emulator().await;
    let s = stack(&emu, pool.clone(), None).await;
    // Ready once the database answers and Slack said hello on the socket.
    let deadline = std::time::Instant::now() + WAIT;
    let ready = loop {
        let r: Value = sentinel::net::client()
            .get(format!("http://{}/readyz", s.webhook_addr))
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
    assert_eq!(post_sample(&s).await, 200);
    let root = first_root(&emu).await;
    let shown_root = shown(&roots(&emu)[0]);
    assert!(shown_root.contains("KubePodCrashLooping"), "{shown_root}");
    let texts = wait_reply(&emu, &root, "Runbook-based diagnosis").await;
    assert_eq!(texts.len(), 1, "one reply, edited in place: {texts:?}");
    let reply = &texts[0];
    assert!(reply.contains("no LLM is configured"), "{reply}");
    assert!(reply.contains("checkout-api"), "{reply}");
    assert!(!reply.contains("Drafting a diagnosis"), "{reply}");
    let edits = emu
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
    assert_eq!(post_sample(&s).await, 200);
    settled(&pool).await;
    assert_eq!(roots(&emu).len(), 1);
    assert_eq!(replies(&emu, &root).len(), 1);
    s.shutdown().await;
}

#[sqlx::test]
async fn llm_diagnosis_replaces_the_runbook_reply(pool: PgPool) {
    let answer = json!({
        "summary": {"text": "checkout-api is crash looping after a release.", "sources": ["S1", "ALERT"]},
        "likely_causes": [{"cause": "A bad release", "confidence": 0.7, "sources": ["S1"]}],
        "next_checks": [{"check": "Read the previous container logs", "sources": ["S1"]}],
        "proposed_actions": []
    });
    let llm = TestLlm::start(Reply::json(&answer)).await.unwrap();
    let emu = emulator().await;
    let s = stack(&emu, pool.clone(), Some(&llm)).await;
    assert_eq!(post_sample(&s).await, 200);
    let root = first_root(&emu).await;
    let texts = wait_reply(&emu, &root, "Diagnosis draft").await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("checkout-api is crash looping after a release."));
    assert!(texts[0].contains("70% likely"), "{}", texts[0]);
    // Tokens were charged to this incident.
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM llm_calls WHERE incident_key LIKE 'incident-%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(n, 1);
    s.shutdown().await;
}

#[sqlx::test]
async fn alert_message_in_a_watched_channel_is_answered_in_its_thread(pool: PgPool) {
    let emu = emulator().await;
    let s = stack(&emu, pool.clone(), None).await;
    let mut event: Value = serde_json::from_str(include_str!(
        "../data/alerts/slack-alertmanager-message.json"
    ))
    .unwrap();
    event["channel"] = json!(ALERTS);
    let ts = emu.bot_posts(event);
    let texts = wait_reply(&emu, &ts, "Runbook-based diagnosis").await;
    assert!(texts[0].contains("KubePodCrashLooping"), "{}", texts[0]);
    // Sentinel answered under the alert message: it posted no root of its own.
    assert!(roots(&emu)
        .iter()
        .all(|m| m.user.as_deref() != Some(BOT_USER_ID)));

    // Ordinary chat in the channel is left alone (checked once a later mention, sent
    // after it, has been answered).
    let chat = emu.user_says(ALERTS, "U0ALICE", "lunch anyone?", None);
    let later = emu.user_says(
        ALERTS,
        "U0ALICE",
        &format!("<@{BOT_USER_ID}> node disk pressure"),
        None,
    );
    wait_reply(&emu, &later, "Best runbook sections").await;
    assert!(replies(&emu, &chat).is_empty());
    assert!(emu.state().reactions.is_empty());
    s.shutdown().await;
}

#[sqlx::test]
async fn question_in_an_incident_thread_and_incident_commands(pool: PgPool) {
    let emu = emulator().await;
    let s = stack(&emu, pool.clone(), None).await;
    assert_eq!(post_sample(&s).await, 200);
    let root = first_root(&emu).await;
    wait_reply(&emu, &root, "Runbook-based diagnosis").await;

    emu.user_says(
        ALERTS,
        "U0ALICE",
        &format!("<@{BOT_USER_ID}> how do I roll back checkout?"),
        Some(&root),
    );
    let texts = wait_reply(&emu, &root, "how do I roll back checkout?").await;
    let answer = texts.last().unwrap();
    assert!(
        answer.contains("checkout/checkout-api-crashloop.md"),
        "{answer}"
    );

    let list = command_answer(&emu, "incidents", "KubePodCrashLooping").await;
    let (id,): (i64,) = sqlx::query_as("SELECT id FROM incidents")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        list.contains(&format!("*#{id}* KubePodCrashLooping")),
        "{list}"
    );
    let missing = command_answer(&emu, "incident 999", "#999").await;
    assert!(missing.contains("There is no incident #999"), "{missing}");

    let before = emu.state().ephemerals.len();
    emu.slash_command(
        ALERTS,
        "U0BOB",
        "/sentinel",
        "ask how do I free disk space on a node?",
    );
    let asked = emu
        .wait_for(WAIT, |st| {
            st.ephemerals
                .iter()
                .skip(before)
                .filter(|e| e.via == "response_url")
                .map(|e| {
                    let blocks = e.blocks.as_ref().and_then(Value::as_array);
                    blocks
                        .map(|b| sentinel::slack::blocks::plain_text(b))
                        .unwrap_or_default()
                })
                .find(|t| t.contains("free disk space"))
        })
        .await
        .expect("`/sentinel ask` answered after its ack");
    assert!(asked.contains("No LLM answer available"), "{asked}");
    assert!(asked.contains("platform/node-disk-pressure.md"), "{asked}");
    s.shutdown().await;
}
