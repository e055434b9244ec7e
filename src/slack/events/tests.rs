//! Parser tests on recorded payloads, plus a property test that nothing panics.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn envelope(raw: &str) -> Inbound {
    let v: Value = serde_json::from_str(raw).unwrap();
    parse_envelope_payload(v["type"].as_str().unwrap(), &v["payload"])
}

#[test]
fn app_mention_is_a_mention_replied_in_a_new_thread() {
    let Inbound::Mention(m) = envelope(include_str!(
        "../../../tests/data/slack/app-mention-envelope.json"
    )) else {
        panic!("expected a mention")
    };
    assert_eq!(m.channel, "C0GENERAL");
    assert_eq!(m.user.as_deref(), Some("U0ALICE"));
    assert_eq!(m.reply_thread(), "1700000000.000100");
    assert!(m.text.contains("crash looping"));
    assert_eq!(
        Inbound::Mention(m).dedupe_key().as_deref(),
        Some("event:Ev0MENTION1")
    );
}

#[test]
fn mention_inside_a_thread_replies_in_that_thread() {
    let Inbound::Mention(m) = envelope(include_str!(
        "../../../tests/data/slack/threaded-mention-retry-envelope.json"
    )) else {
        panic!("expected a mention")
    };
    assert_eq!(m.reply_thread(), "1700000000.000100");
}

#[test]
fn a_click_on_an_ephemeral_message_takes_its_place_from_the_container() {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U0ALICE"}, "trigger_id": "1.2.t",
        "container": {"type": "message", "message_ts": "1700000000.000300",
            "channel_id": "C0GENERAL", "is_ephemeral": true, "thread_ts": "1700000000.000100"},
        "response_url": "https://hooks.slack.com/actions/T/1/x",
        "actions": [{"action_id": "kb_helpful", "value": "c1", "type": "button"}],
    });
    let Inbound::BlockAction(a) = parse_interactive(&payload) else {
        panic!("expected a block action")
    };
    assert_eq!(a.channel_id.as_deref(), Some("C0GENERAL"));
    assert_eq!(a.message_ts.as_deref(), Some("1700000000.000300"));
    assert_eq!(a.thread_ts.as_deref(), Some("1700000000.000100"));
    assert!(a.is_ephemeral);
    assert_eq!(a.reply_thread(), Some("1700000000.000100"));
    // At the top level an ephemeral's ts is no thread: replies go to the channel.
    let mut top = payload.clone();
    top["container"]
        .as_object_mut()
        .unwrap()
        .remove("thread_ts");
    let Inbound::BlockAction(a) = parse_interactive(&top) else {
        panic!("expected a block action")
    };
    assert_eq!(a.reply_thread(), None);
    // A stored message's own ts is its thread.
    top["container"]["is_ephemeral"] = json!(false);
    let Inbound::BlockAction(a) = parse_interactive(&top) else {
        panic!("expected a block action")
    };
    assert_eq!(a.reply_thread(), Some("1700000000.000300"));
}

#[test]
fn edits_are_ignored() {
    assert!(matches!(
        envelope(include_str!(
            "../../../tests/data/slack/message-edited-envelope.json"
        )),
        Inbound::Ignored { .. }
    ));
}

#[test]
fn alertmanager_bot_message_is_a_message_with_its_attachments() {
    let event: Value = serde_json::from_str(include_str!(
        "../../../tests/data/alerts/slack-alertmanager-message.json"
    ))
    .unwrap();
    let Inbound::Message(m) = parse_events_api(&json!({"event_id": "Ev1", "event": event})) else {
        panic!("expected a message")
    };
    assert_eq!(m.bot_id.as_deref(), Some("B0ALERTMGR"));
    assert_eq!(m.subtype.as_deref(), Some("bot_message"));
    assert!(m.raw["attachments"][0]["title_link"].is_string());
}

#[test]
fn slash_command_fields() {
    let Inbound::Command(c) = envelope(include_str!(
        "../../../tests/data/slack/slash-command-envelope.json"
    )) else {
        panic!("expected a command")
    };
    assert_eq!(c.command, "/sentinel");
    assert_eq!(c.text, "search  disk   full on node");
    assert_eq!(
        Inbound::Command(c).dedupe_key().as_deref(),
        Some("command:1234.5678.abcdef")
    );
}

#[test]
fn block_action_is_keyed_on_the_click() {
    let Inbound::BlockAction(a) = envelope(include_str!(
        "../../../tests/data/slack/block-actions-envelope.json"
    )) else {
        panic!("expected a block action")
    };
    assert_eq!(a.action_id, "kb_helpful");
    assert_eq!(a.channel_id.as_deref(), Some("C0GENERAL"));
    assert_eq!(a.message_ts.as_deref(), Some("1700000001.000200"));
    assert_eq!(a.thread_ts.as_deref(), Some("1700000000.000100"));
    assert_eq!(
        Inbound::BlockAction(a).dedupe_key().as_deref(),
        Some("action:U0ALICE:kb_helpful:1700000009.123456")
    );
}

#[test]
fn view_submission_values() {
    let Inbound::ViewSubmission(v) = envelope(include_str!(
        "../../../tests/data/slack/view-submission-envelope.json"
    )) else {
        panic!("expected a view submission")
    };
    assert_eq!(v.callback_id, "kb_search");
    assert_eq!(
        v.text_value("query", "query").as_deref(),
        Some("etcd no leader")
    );
    assert_eq!(v.text_value("query", "missing"), None);
}

#[test]
fn missing_fields_are_ignored_not_panics() {
    for (kind, p) in [
        ("events_api", json!({})),
        (
            "events_api",
            json!({"event_id": "E", "event": {"type": "app_mention"}}),
        ),
        (
            "events_api",
            json!({"event_id": "E", "event": {"type": "reaction_added"}}),
        ),
        ("slash_commands", json!({"command": "/sentinel"})),
        (
            "interactive",
            json!({"type": "block_actions", "actions": []}),
        ),
        ("interactive", json!({"type": "shortcut"})),
        ("hello", json!(null)),
    ] {
        let r = parse_envelope_payload(kind, &p);
        assert!(matches!(r, Inbound::Ignored { .. }), "{kind} {p} -> {r:?}");
        assert_eq!(r.dedupe_key(), None);
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z_]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("app_mention"),
            Just("message"),
            Just("block_actions"),
            Just("view_submission"),
            Just("bot_message")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("event".to_string()),
                    Just("event_id".to_string()),
                    Just("channel".to_string()),
                    Just("ts".to_string()),
                    Just("user".to_string()),
                    Just("actions".to_string()),
                    Just("view".to_string()),
                    Just("id".to_string()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parsers_never_panic(kind in prop_oneof![Just("events_api"), Just("slash_commands"), Just("interactive"), Just("x")], payload in arb_json()) {
        let r = parse_envelope_payload(kind, &payload);
        // Whatever came in, an accepted delivery always has a key to de-duplicate on.
        if !matches!(r, Inbound::Ignored { .. }) {
            prop_assert!(r.dedupe_key().is_some());
        }
    }

    #[test]
    fn garbage_text_never_panics(raw in ".{0,200}") {
        if let Ok(v) = serde_json::from_str::<Value>(&raw) {
            let _ = parse_envelope_payload("events_api", &v);
        }
    }
}
