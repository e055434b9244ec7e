//! The bot against the Slack emulator, connected through slack-morphism's Socket Mode:
//! routing, "never twice", reconnects, 429 storms, malformed envelopes, ack latency.

use std::time::Duration;

use secrecy::SecretString;
use sentinel::slack::emulator::{BOT_ID, BOT_USER_ID};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::fixtures::SLACK_MSG;
use crate::helpers::slack::{
    acked, emulator, mention, slack_config, slash_answer, slash_response, wait_replies, Shown, WAIT,
};
use crate::helpers::{TestApp, ALERTS};

#[sqlx::test]
async fn mention_is_answered_in_thread_with_runbook_sections(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let emu = &app.emu;
    let ts = emu.user_says(
        "C0GENERAL",
        "U0ALICE",
        &mention("checkout-api pods are crash looping, what do I do?"),
        None,
    );
    let replies = wait_replies(emu, "C0GENERAL", &ts, 1).await;
    assert_eq!(replies.len(), 1, "one answer in the thread");
    let text = replies[0].shown();
    assert!(text.contains("Best runbook sections for"), "{text}");
    assert!(
        text.contains("Checkout API pods crash looping"),
        "the crash-loop runbook is cited: {text}"
    );
    assert!(
        text.contains("https://runbooks.example.com/"),
        "sections link to the runbook: {text}"
    );
    let blocks = replies[0].blocks.as_ref().unwrap().as_array().unwrap();
    let buttons: Vec<&str> = blocks
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap())
        .filter_map(|e| e["action_id"].as_str())
        .collect();
    assert_eq!(buttons, ["kb_helpful", "kb_search_open"]);
    // Every envelope (the message and the mention) was acked within Slack's deadline.
    let acks = emu
        .wait_for(WAIT, |s| (s.acks.len() >= 2).then(|| s.acks.clone()))
        .await
        .unwrap();
    assert!(acks.iter().all(|a| a.latency < Duration::from_secs(3)));
    app.shutdown().await;
}

#[sqlx::test]
async fn watched_channel_alert_posts_get_a_thread_but_own_messages_are_ignored(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let emu = &app.emu;
    // Our own posts, by bot id and by user id: never handled.
    let own_bot = emu.bot_posts(json!({"type": "message", "subtype": "bot_message", "bot_id": BOT_ID, "channel": ALERTS, "text": "mine"}));
    let own_user = emu.user_says(ALERTS, BOT_USER_ID, "also mine", None);
    // Unwatched channel: ignored.
    let elsewhere = emu.user_says("C0GENERAL", "U0BOB", "lunch?", None);
    let mut alert: Value = serde_json::from_str(SLACK_MSG).unwrap();
    alert["channel"] = json!(ALERTS);
    let alert_ts = emu.bot_posts(alert);
    // The alert post becomes an incident answered in its own thread.
    let reply = emu
        .wait_for(WAIT, |s| {
            s.messages
                .iter()
                .find(|m| m.thread_ts.as_deref() == Some(alert_ts.as_str()))
                .cloned()
        })
        .await
        .expect("the alert post gets a thread reply");
    let shown = format!(
        "{} {}",
        reply.text,
        reply.blocks.clone().unwrap_or_default()
    );
    assert!(shown.contains("checkout-api-crashloop.md"), "{shown}");
    emu.wait_for(WAIT, |s| (s.acks.len() >= 4).then_some(()))
        .await
        .unwrap();
    {
        let st = emu.state();
        for ts in [own_bot, own_user, elsewhere] {
            assert!(
                !st.reactions.iter().any(|r| r.ts == ts),
                "no reaction on {ts}"
            );
            assert!(
                !st.messages
                    .iter()
                    .any(|m| m.thread_ts.as_deref() == Some(ts.as_str())),
                "no reply to {ts}"
            );
        }
    }
    app.shutdown().await;
}

#[sqlx::test]
async fn slash_commands_help_search_and_mistakes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let emu = &app.emu;
    let help = slash_answer(emu, "C0GENERAL", "U0ALICE", "help", "/sentinel help").await;
    assert_eq!(help.via, "command_ack", "help in the ack");
    assert_eq!(help.user, "U0ALICE");
    for sub in [
        "/sentinel help",
        "/sentinel search <question>",
        "/sentinel find",
        "/sentinel status",
    ] {
        assert!(help.text.contains(sub), "help lists {sub}: {}", help.text);
    }
    let err = slash_answer(
        emu,
        "C0GENERAL",
        "U0BOB",
        "reboot everything",
        "is not a Sentinel command",
    )
    .await;
    assert_eq!(err.user, "U0BOB");
    assert!(
        err.text.starts_with("`reboot` is not a Sentinel command."),
        "{}",
        err.text
    );

    let text = slash_response(
        emu,
        "C0GENERAL",
        "U0ALICE",
        "search node disk pressure",
        "Kubernetes node disk filling up",
    )
    .await;
    assert!(text.contains("Kubernetes node disk filling up"), "{text}");
    // Nothing was posted in the channel for everyone.
    assert!(emu.messages("C0GENERAL").is_empty());
    app.shutdown().await;
}

#[sqlx::test]
async fn buttons_and_the_search_modal(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let emu = &app.emu;
    let ts = emu.user_says(
        "C0GENERAL",
        "U0ALICE",
        &mention("orders queue backlog growing"),
        None,
    );
    let answer = wait_replies(emu, "C0GENERAL", &ts, 1).await.remove(0);

    // 👍 Helpful: a thank-you in the thread, once even if Slack delivers the click twice.
    let click = app
        .click("C0GENERAL", &answer.ts, "U0BOB", "kb_helpful")
        .await;
    acked(emu, &emu.resend(&click).unwrap()).await;
    let replies = wait_replies(emu, "C0GENERAL", &ts, 2).await;
    assert!(
        replies[1]
            .text
            .contains("<@U0BOB> found this answer helpful"),
        "{}",
        replies[1].text
    );

    // 🔎 Search again: opens the modal pre-filled; submitting posts a new answer in the thread.
    app.click("C0GENERAL", &answer.ts, "U0ALICE", "kb_search_open")
        .await;
    let view = emu
        .wait_for(WAIT, |s| s.views.first().cloned())
        .await
        .expect("modal opened");
    assert_eq!(view.view["title"]["text"], "Search runbooks");
    assert_eq!(
        view.view["blocks"][0]["element"]["initial_value"],
        "orders queue backlog growing"
    );
    emu.submit_view(
        &view.id,
        "U0ALICE",
        json!({"query": {"query": "payments gateway errors"}}),
    )
    .unwrap();
    let replies = wait_replies(emu, "C0GENERAL", &ts, 3).await;
    assert_eq!(replies.len(), 3, "{replies:#?}");
    assert!(replies[2].shown().contains("payments gateway errors"));
    // The duplicate click produced nothing more.
    assert_eq!(
        emu.thread("C0GENERAL", &ts)
            .iter()
            .filter(|m| m.text.contains("helpful"))
            .count(),
        1
    );
    app.shutdown().await;
}

#[sqlx::test]
async fn redelivered_event_is_answered_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let emu = &app.emu;
    let ts = "1600000000.000100";
    emu.state()
        .messages
        .push(sentinel::slack::emulator::Message {
            channel: "C0GENERAL".into(),
            ts: ts.into(),
            thread_ts: None,
            user: Some("U0ALICE".into()),
            bot_id: None,
            text: mention("etcd has no leader"),
            blocks: None,
            edits: 0,
            metadata: None,
        });
    let event = json!({"type": "app_mention", "channel": "C0GENERAL", "user": "U0ALICE", "text": mention("etcd has no leader"), "ts": ts});
    let first = emu.send_event_with_id("Ev0SAME", event.clone());
    let second = emu.send_event_with_id("Ev0SAME", event.clone());
    acked(emu, &first).await;
    acked(emu, &second).await;
    wait_replies(emu, "C0GENERAL", ts, 1).await;
    // A third copy after the first was answered: still nothing new.
    acked(emu, &emu.send_event_with_id("Ev0SAME", event)).await;
    let other = emu.user_says("C0GENERAL", "U0BOB", &mention("ingress 5xx"), None);
    wait_replies(emu, "C0GENERAL", &other, 1).await;
    assert_eq!(
        emu.thread("C0GENERAL", ts).len(),
        1,
        "one answer for three deliveries"
    );
    app.shutdown().await;
}

#[sqlx::test]
async fn two_replicas_sharing_a_database_answer_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let b = app.replica().await;
    let emu = &app.emu;
    assert_eq!(emu.state().connections.len(), 2);
    let ts = emu.user_says("C0GENERAL", "U0ALICE", &mention("cart cache memory"), None);
    // user_says sent a message + a mention; send the mention's event again (Slack retry)
    // so the two copies land on different replicas (round robin).
    let mention_env = emu
        .state()
        .sent
        .values()
        .find(|p| p.payload["event"]["type"] == "app_mention")
        .map(|p| p.envelope_id.clone())
        .unwrap();
    let copies: Vec<String> = (0..3).map(|_| emu.resend(&mention_env).unwrap()).collect();
    for c in &copies {
        acked(emu, c).await;
    }
    wait_replies(emu, "C0GENERAL", &ts, 1).await;
    let marker = emu.user_says(
        "C0GENERAL",
        "U0BOB",
        &mention("orders db replication lag"),
        None,
    );
    wait_replies(emu, "C0GENERAL", &marker, 1).await;
    assert_eq!(emu.thread("C0GENERAL", &ts).len(), 1);
    app.shutdown().await;
    b.shutdown().await;
}

#[sqlx::test]
async fn event_sent_while_disconnected_is_handled_once_after_reconnect(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let emu = &app.emu;
    // Slack asks for a refresh: the client reconnects at once.
    let opened = emu.state().connections_opened;
    emu.disconnect_all("refresh_requested");
    emu.wait_for(WAIT, |s| {
        (s.connections_opened > opened && !s.connections.is_empty()).then_some(())
    })
    .await
    .expect("reconnected after disconnect");

    // The network drops and Slack is unreachable for a while; a question comes in meanwhile.
    emu.set_offline(true);
    emu.wait_for(WAIT, |s| s.connections.is_empty().then_some(()))
        .await
        .unwrap();
    let ts = emu.user_says(
        "C0GENERAL",
        "U0ALICE",
        &mention("ingress returning 5xx"),
        None,
    );
    assert!(emu.thread("C0GENERAL", &ts).is_empty());
    emu.set_offline(false);
    let replies = wait_replies(emu, "C0GENERAL", &ts, 1).await;
    assert_eq!(replies.len(), 1);
    let acks = emu.acks();
    let retried = acks.iter().filter(|a| a.retry_attempt >= 1).count();
    assert!(
        retried >= 1,
        "delivered as a retry after reconnecting: {acks:?}"
    );
    let marker = emu.user_says("C0GENERAL", "U0BOB", &mention("cart cache"), None);
    wait_replies(emu, "C0GENERAL", &marker, 1).await;
    assert_eq!(emu.thread("C0GENERAL", &ts).len(), 1, "handled once");
    app.shutdown().await;
}

#[sqlx::test]
async fn a_storm_of_429s_loses_no_message(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let emu = &app.emu;
    emu.ratelimit_next("chat.postMessage", 6, 1);
    let questions = [
        "checkout crash",
        "orders backlog",
        "payments errors",
        "cart memory",
        "replication lag",
        "ingress 5xx",
        "disk pressure",
    ];
    let threads: Vec<String> = questions
        .iter()
        .map(|q| emu.user_says("C0OPS", "U0ALICE", &mention(q), None))
        .collect();
    let all = emu
        .wait_for(Duration::from_secs(60), |s| {
            threads
                .iter()
                .all(|t| {
                    s.messages
                        .iter()
                        .any(|m| m.thread_ts.as_deref() == Some(t.as_str()))
                })
                .then_some(())
        })
        .await;
    assert!(all.is_some(), "every question answered despite 429s");
    for t in &threads {
        assert_eq!(emu.thread("C0OPS", t).len(), 1);
    }
    assert!(
        emu.state().faults.rate_limits["chat.postMessage"].0 == 0,
        "the 429s were really served"
    );
    app.shutdown().await;
}

#[sqlx::test]
async fn malformed_envelopes_are_acked_and_the_bot_keeps_working(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let emu = &app.emu;
    emu.send_raw_frame(r#"{"envelope_id":"bad-1","type":"events_api","payload":{"nonsense":true},"accepts_response_payload":false}"#);
    emu.send_raw_frame(r#"{"envelope_id":"bad-2","type":"mystery","payload":[]}"#);
    emu.send_raw_frame(r#"{"envelope_id":"bad-3","type":"interactive","payload":{"type":"block_actions"},"accepts_response_payload":false}"#);
    emu.send_raw_frame("}{ not json");
    emu.send_event(json!({"type": "reaction_added", "user": "U0ALICE", "reaction": "tada"}));
    emu.send_event(json!({"type": "app_mention", "channel": "C0GENERAL"}));
    let acked = emu
        .wait_for(WAIT, |s| {
            ["bad-1", "bad-2", "bad-3"]
                .iter()
                .all(|id| s.acks.iter().any(|a| a.envelope_id == *id))
                .then_some(())
        })
        .await;
    assert!(
        acked.is_some(),
        "malformed envelopes are acked: {:?}",
        emu.acks()
    );
    let ts = emu.user_says("C0GENERAL", "U0ALICE", &mention("node disk pressure"), None);
    assert_eq!(
        wait_replies(emu, "C0GENERAL", &ts, 1).await.len(),
        1,
        "still answering"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn startup_names_the_wrong_token() {
    let emu = emulator().await;
    let good = slack_config(&emu, &[]);
    let client = |c: &sentinel::config::SlackConfig| {
        sentinel::slack::SlackClient::new(&c.api_url, c.bot_token.clone(), Default::default())
            .unwrap()
    };
    let ok = sentinel::slack::auth::check_tokens(&client(&good), &good.app_token, &good.bot_token)
        .await
        .unwrap();
    assert_eq!(ok.user_id, BOT_USER_ID);
    assert_eq!(ok.bot_id, BOT_ID);

    let mut bad = good.clone();
    bad.bot_token = SecretString::from("xoxb-not-the-right-one");
    let e = sentinel::slack::auth::check_tokens(&client(&bad), &bad.app_token, &bad.bot_token)
        .await
        .unwrap_err();
    assert!(
        e.0.starts_with("SLACK_BOT_TOKEN was rejected") && e.0.contains("invalid_auth"),
        "{e}"
    );
    assert!(
        !e.0.contains("xoxb-not-the-right-one"),
        "the token never appears in messages"
    );

    let mut swapped = good.clone();
    swapped.bot_token = good.app_token.clone();
    let e = sentinel::slack::auth::check_tokens(
        &client(&swapped),
        &swapped.app_token,
        &swapped.bot_token,
    )
    .await
    .unwrap_err();
    assert!(
        e.0.contains("SLACK_BOT_TOKEN")
            && e.0.contains("not_allowed_token_type")
            && e.0.contains("swapped"),
        "{e}"
    );

    let mut bad_app = good.clone();
    bad_app.app_token = SecretString::from("xapp-1-revoked");
    let e = sentinel::slack::auth::check_tokens(
        &client(&bad_app),
        &bad_app.app_token,
        &bad_app.bot_token,
    )
    .await
    .unwrap_err();
    assert!(
        e.0.starts_with("SLACK_APP_TOKEN was rejected") && e.0.contains("invalid_auth"),
        "{e}"
    );
}

#[tokio::test]
async fn acks_stay_under_three_seconds_while_work_is_slow() {
    sentinel::net::install_crypto();
    let r = sentinel::bench::slack_ack::measure(200, Duration::from_secs(2), 1, 256)
        .await
        .unwrap();
    assert_eq!(r.envelopes, 200);
    assert!(r.max_ms < 3000.0, "{r:?}");
    assert_eq!(r.redeliveries, 0, "{r:?}");
    assert_eq!(r.handled, 200, "all the slow work ran: {r:?}");
}
