//! Property tests: no parser panics, whatever the bytes or JSON shape.

use chrono::Utc;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("firing"),
            Just("resolved"),
            Just("4"),
            Just("1"),
            Just("0001-01-01T00:00:00Z"),
            Just("2026-11-20T21:04:12.331Z"),
            Just("[FIRING:2] X y (z)"),
            Just("1763672652.331900"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("version".to_string()),
                    Just("groupKey".to_string()),
                    Just("alerts".to_string()),
                    Just("status".to_string()),
                    Just("labels".to_string()),
                    Just("annotations".to_string()),
                    Just("startsAt".to_string()),
                    Just("endsAt".to_string()),
                    Just("name".to_string()),
                    Just("commonAnnotations".to_string()),
                    Just("channel".to_string()),
                    Just("ts".to_string()),
                    Just("text".to_string()),
                    Just("attachments".to_string()),
                    Just("title".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = alertmanager(&bytes);
        let _ = grafana(&bytes);
        let _ = generic(&bytes, Utc::now());
    }

    #[test]
    fn parsers_never_panic_on_json_shapes(v in arb_json()) {
        let body = v.to_string();
        let _ = alertmanager(body.as_bytes());
        let _ = grafana(body.as_bytes());
        let _ = generic(body.as_bytes(), Utc::now());
        let _ = slack_message(&v);
    }

    #[test]
    fn slack_text_never_panics(text in "\\PC{0,80}", title in "\\PC{0,80}") {
        let v = json!({"channel":"C1","ts":"1.5","text":text,"attachments":[{"title":title,"text":text}]});
        let _ = slack_message(&v);
    }

    #[test]
    fn mutated_sample_never_panics(idx in 0usize..2000, byte in any::<u8>()) {
        let mut body = include_bytes!("../../../tests/data/alerts/alertmanager-v4-firing.json").to_vec();
        let i = idx % body.len();
        body[i] = byte;
        let _ = alertmanager(&body);
    }
}
