//! The outbound client and the emulator's Web API: tokens, errors, limits, fallbacks,
//! retries and timeouts.

use std::time::Duration;

use secrecy::SecretString;
use sentinel::retry::Backoff;
use sentinel::slack::emulator::Emulator;
use sentinel::slack::{blocks, ClientOptions, Message, Mrkdwn, SlackClient, SlackError};
use serde_json::json;

use crate::helpers::slack::emulator;

/// A text message as the bot sends one.
fn text(s: impl Into<String>) -> Message {
    Message::text_only(&Mrkdwn::own(s))
}

fn client(emu: &Emulator) -> SlackClient {
    SlackClient::new(
        &emu.api_url(),
        SecretString::from(emu.shared.cfg.bot_token.clone()),
        ClientOptions {
            timeout: Duration::from_secs(5),
            backoff: Backoff {
                attempts: 4,
                base: Duration::from_millis(20),
                max: Duration::from_millis(200),
            },
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn web_api_checks_tokens() {
    let emu = emulator().await;
    let http = sentinel::net::client();
    let call = |token: Option<&str>, method: &str| {
        let mut r = http
            .post(format!("{}/{method}", emu.api_url()))
            .json(&json!({"channel": "C0GENERAL", "text": "hi"}));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            r.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let app = emu.shared.cfg.app_token.clone();
    let bot = emu.shared.cfg.bot_token.clone();
    assert_eq!(
        call(Some(&app), "chat.postMessage").await["error"],
        "not_allowed_token_type"
    );
    assert_eq!(
        call(Some(&bot), "apps.connections.open").await["error"],
        "not_allowed_token_type"
    );
    assert_eq!(
        call(Some("xoxb-guess"), "chat.postMessage").await["error"],
        "invalid_auth"
    );
    assert_eq!(call(None, "auth.test").await["error"], "not_authed");
    let open = call(Some(&app), "apps.connections.open").await;
    assert!(open["url"].as_str().unwrap().starts_with("ws://127.0.0.1:"));
    assert_eq!(call(Some(&bot), "auth.test").await["ok"], true);
}

#[tokio::test]
async fn messages_threads_edits_reactions_permalinks_and_lookups() {
    let emu = emulator().await;
    let c = client(&emu);
    let parent = c
        .post_message("C0GENERAL", None, &text("parent"))
        .await
        .unwrap();
    let reply = c
        .post_message(
            "C0GENERAL",
            Some(&parent.ts),
            &Message::new(
                &Mrkdwn::own("child"),
                vec![blocks::section(&Mrkdwn::own("*child*"))],
            ),
        )
        .await
        .unwrap();
    c.update_message("C0GENERAL", &reply.ts, &text("child v2"))
        .await
        .unwrap();
    c.add_reaction("C0GENERAL", &parent.ts, "eyes")
        .await
        .unwrap();
    c.add_reaction("C0GENERAL", &parent.ts, "eyes")
        .await
        .unwrap(); // already_reacted is fine
    let link = c.get_permalink("C0GENERAL", &parent.ts).await.unwrap();
    assert!(link.contains("/archives/C0GENERAL/p"), "{link}");
    c.post_ephemeral("C0GENERAL", "U0ALICE", Some(&parent.ts), &text("psst"))
        .await
        .unwrap();

    let thread = emu.thread("C0GENERAL", &parent.ts);
    assert_eq!(thread.len(), 1);
    assert_eq!(thread[0].text, "child v2");
    assert_eq!(thread[0].edits, 1);
    {
        let st = emu.state();
        assert_eq!(st.reactions.len(), 1);
        assert_eq!(st.ephemerals[0].text, "psst");
        assert_eq!(st.ephemerals[0].thread_ts.as_deref(), Some(&*parent.ts));
        assert!(st.ephemerals[0].ts > reply.ts, "placed after the reply");
    }

    let replies = c
        .call(
            "conversations.replies",
            json!({"channel": "C0GENERAL", "ts": parent.ts}),
        )
        .await
        .unwrap();
    assert_eq!(replies["messages"].as_array().unwrap().len(), 2);
    let info = c
        .call("conversations.info", json!({"channel": "C0GENERAL"}))
        .await
        .unwrap();
    assert!(info["channel"]["created"].is_i64());
    let user = c
        .call("users.info", json!({"user": "U0ALICE"}))
        .await
        .unwrap();
    assert_eq!(user["user"]["id"], "U0ALICE");
    let group = c
        .call("usergroups.users.list", json!({"usergroup": "S0ONCALL"}))
        .await
        .unwrap();
    assert_eq!(group["users"], json!(["U0ALICE", "U0BOB"]));
}

/// A button on an ephemeral message: only its person can click it, and the click comes as
/// Slack sends it, without `message`, the container saying where it was.
#[tokio::test]
async fn a_button_on_an_ephemeral_message_is_clicked_by_its_person_only() {
    let emu = emulator().await;
    let c = client(&emu);
    let parent = c
        .post_message("C0GENERAL", None, &text("parent"))
        .await
        .unwrap();
    let button = blocks::actions(
        "choice",
        vec![blocks::button(
            &sentinel::slack::Plain::own("Pick"),
            "pick",
            "v1",
        )],
    );
    let msg = Message::new(&Mrkdwn::own("only you"), vec![button]);
    c.post_ephemeral("C0GENERAL", "U0ALICE", Some(&parent.ts), &msg)
        .await
        .unwrap();
    let ts = emu.state().ephemerals[0].ts.clone();
    assert!(
        emu.click_button("C0GENERAL", &ts, "U0BOB", "pick")
            .is_none(),
        "Bob does not see Alice's ephemeral"
    );
    assert!(emu
        .click_button("C0GENERAL", &ts, "U0ALICE", "nope")
        .is_none());
    let id = emu
        .click_button("C0GENERAL", &ts, "U0ALICE", "pick")
        .unwrap();
    let payload = emu.state().sent[&id].payload.clone();
    assert_eq!(payload["type"], "block_actions");
    assert_eq!(
        payload["container"],
        json!({"type": "message", "message_ts": ts, "channel_id": "C0GENERAL",
            "is_ephemeral": true, "thread_ts": parent.ts})
    );
    assert!(payload.get("message").is_none(), "{payload:#}");
    assert_eq!(payload["actions"][0]["value"], "v1");
    assert_eq!(payload["user"]["id"], "U0ALICE");
}

#[tokio::test]
async fn slack_errors_reach_the_caller() {
    let emu = emulator().await;
    let c = client(&emu);
    let code =
        |r: Result<sentinel::slack::Posted, SlackError>| r.unwrap_err().code().map(str::to_string);
    assert_eq!(
        code(c.post_message("C0NOPE", None, &text("x")).await).as_deref(),
        Some("channel_not_found")
    );
    assert_eq!(
        code(c.post_message("C0RANDOM", None, &text("x")).await).as_deref(),
        Some("not_in_channel")
    );
    let e = c
        .open_view(
            "no-such-trigger",
            json!({"type": "modal", "title": {"type": "plain_text", "text": "x"}, "blocks": []}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("invalid_trigger_id"));
    let e = c
        .update_message("C0GENERAL", "1.2", &text("x"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("message_not_found"));
}

/// The message `ts` of #general, as Slack stored it.
fn general_message(emu: &Emulator, ts: &str) -> sentinel::slack::emulator::Message {
    emu.messages("C0GENERAL")
        .into_iter()
        .find(|m| m.ts == ts)
        .unwrap()
}

#[tokio::test]
async fn invalid_blocks_and_too_long_text_fall_back_to_plain_text() {
    let emu = emulator().await;
    let c = client(&emu);
    // Hand-made blocks past Slack's limits (the builder would have cut them).
    let bad =
        vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": "é".repeat(3001)}})];
    let posted = c
        .post_message(
            "C0GENERAL",
            None,
            &Message::unchecked("the important message", bad.clone()),
        )
        .await
        .unwrap();
    let m = general_message(&emu, &posted.ts);
    assert_eq!(m.text, "the important message");
    assert!(m.blocks.is_none(), "sent as plain text");
    // Without text, the blocks' own text is the fallback, cut cleanly.
    let posted = c
        .post_message("C0GENERAL", None, &Message::unchecked("", bad))
        .await
        .unwrap();
    let m = general_message(&emu, &posted.ts);
    assert_eq!(m.text.chars().count(), blocks::MAX_MESSAGE_TEXT.min(3001));
    assert!(m.text.starts_with("éé"));
    // The builder's blocks pass as they are.
    let posted = c
        .post_message(
            "C0GENERAL",
            None,
            &Message::new(
                &Mrkdwn::own("fine"),
                vec![blocks::section(&Mrkdwn::own("é".repeat(9000)))],
            ),
        )
        .await
        .unwrap();
    let m = general_message(&emu, &posted.ts);
    assert!(m.blocks.is_some());
    assert_eq!(
        emu.state()
            .web_calls
            .iter()
            .filter(|c| *c == "chat.postMessage")
            .count(),
        5
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let emu = emulator().await;
    let c = client(&emu);
    emu.fail_next("chat.postMessage", 2, 503);
    c.post_message("C0GENERAL", None, &text("after two 503s"))
        .await
        .unwrap();
    assert_eq!(emu.messages("C0GENERAL").len(), 1);
    emu.fail_next("chat.update", 10, 500);
    let e = c
        .update_message("C0GENERAL", &emu.messages("C0GENERAL")[0].ts, &text("x"))
        .await
        .unwrap_err();
    assert!(matches!(e, SlackError::Server { status: 500, .. }), "{e:?}");
    assert_eq!(
        emu.state().faults.http_errors["chat.update"].0,
        6,
        "4 attempts, then it gave up"
    );
}

#[tokio::test]
async fn emulator_rate_limits_bursts_and_the_client_paces_itself() {
    let emu = emulator().await;
    // A raw burst over the limit gets 429 with Retry-After.
    let http = sentinel::net::client();
    let mut statuses = Vec::new();
    let started = std::time::Instant::now();
    for i in 0..8 {
        let r = http
            .post(format!("{}/chat.postMessage", emu.api_url()))
            .bearer_auth(&emu.shared.cfg.bot_token)
            .json(&json!({"channel": "C0OPS", "text": format!("burst {i}")}))
            .send()
            .await
            .unwrap();
        statuses.push((
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string()),
        ));
    }
    // A burst of 4, then one a second: a slow machine may have earned a few more by the end.
    let ok = statuses.iter().filter(|s| s.0 == 200).count();
    let refills = started.elapsed().as_secs() as usize;
    assert!((4..=4 + refills).contains(&ok), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .filter(|s| s.0 == 429)
            .all(|s| s.1.as_deref() == Some("1")),
        "{statuses:?}"
    );
    // The client sends the same burst without losing any (pacing + Retry-After).
    let c = client(&emu);
    let posts = (0..6).map(|i| {
        let c = c.clone();
        async move {
            c.post_message("C0GENERAL", None, &text(format!("paced {i}")))
                .await
        }
    });
    for r in futures::future::join_all(posts).await {
        r.unwrap();
    }
    assert_eq!(emu.messages("C0GENERAL").len(), 6);
}

#[tokio::test]
async fn every_call_times_out() {
    // A server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            if let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        }
    });
    let c = SlackClient::new(
        &format!("http://{addr}/api"),
        SecretString::from("xoxb-x"),
        ClientOptions {
            timeout: Duration::from_millis(200),
            backoff: Backoff {
                attempts: 2,
                base: Duration::from_millis(10),
                max: Duration::from_millis(20),
            },
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let started = std::time::Instant::now();
    let e = c.post_message("C1", None, &text("x")).await.unwrap_err();
    assert!(matches!(e, SlackError::Timeout { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "posts are not retried after a timeout (no double post)"
    );
    let e = c
        .call("users.info", json!({"user": "U1"}))
        .await
        .unwrap_err();
    assert!(matches!(e, SlackError::Timeout { .. }), "{e:?}");
    hold.abort();
}
