//! The chain itself, pure: a row's canonical bytes, the keyed hash that links it to the
//! row before, and the redaction an event goes through before either.
//!
//! `hash = HMAC-SHA256(key, prev_hash as 32 raw bytes || canonical bytes)`, hex. The
//! canonical bytes are one JSON object, keys in this order, no whitespace:
//! `{"action","actor_id","actor_name","argv","at","detail","incident_id","kind","outcome",
//! "proposal_id","seq","v":1}`, `detail` spliced verbatim from the stored text
//! (docs/audit.md).

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{AuditKey, Event, StoredEvent};
use crate::redact::{redact_patterns, MARK};

/// The `prev_hash` of row 1: 32 zero bytes, hex.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Version of the canonical form, inside the hashed bytes.
pub const FORMAT_VERSION: u32 = 1;

/// `at` as hashed and exported: RFC 3339, UTC, exactly six fractional digits, `Z`.
pub fn format_at(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The bytes of `row` that its hash covers (every column but `prev_hash` and `hash`).
pub fn canonical(row: &StoredEvent) -> Vec<u8> {
    let (actor_id, actor_name) = row.actor.parts();
    let mut out = Vec::with_capacity(256 + row.detail.len());
    out.extend_from_slice(b"{\"action\":");
    opt_str(&mut out, row.action.as_deref());
    out.extend_from_slice(b",\"actor_id\":");
    string(&mut out, actor_id);
    out.extend_from_slice(b",\"actor_name\":");
    string(&mut out, actor_name);
    out.extend_from_slice(b",\"argv\":");
    match &row.argv {
        None => out.extend_from_slice(b"null"),
        Some(argv) => {
            out.push(b'[');
            for (i, a) in argv.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(&mut out, a);
            }
            out.push(b']');
        }
    }
    out.extend_from_slice(b",\"at\":");
    string(&mut out, &format_at(&row.at));
    out.extend_from_slice(b",\"detail\":");
    out.extend_from_slice(row.detail.as_bytes());
    out.extend_from_slice(b",\"incident_id\":");
    opt_int(&mut out, row.incident_id);
    out.extend_from_slice(b",\"kind\":");
    string(&mut out, &row.kind);
    out.extend_from_slice(b",\"outcome\":");
    opt_str(&mut out, row.outcome.as_deref());
    out.extend_from_slice(b",\"proposal_id\":");
    opt_int(&mut out, row.proposal_id);
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(row.seq.to_string().as_bytes());
    out.extend_from_slice(format!(",\"v\":{FORMAT_VERSION}}}").as_bytes());
    out
}

fn string(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn opt_int(out: &mut Vec<u8>, n: Option<i64>) {
    match n {
        Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// HMAC-SHA256 under `key` of `prev || canonical`.
pub fn mac(key: &AuditKey, prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(key.bytes()).expect("HMAC takes keys of any length");
    m.update(prev);
    m.update(canonical);
    m.finalize().into_bytes().into()
}

/// A stored hash (hex) as raw bytes; `None` when it is not 64 hex digits.
pub fn decode_hash(hex_hash: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut out).ok()?;
    Some(out)
}

/// The hash `row` must carry when the row before it has hash `prev`.
pub fn expected_hash(key: &AuditKey, prev: &[u8; 32], row: &StoredEvent) -> [u8; 32] {
    mac(key, prev, &canonical(row))
}

/// `v` as canonical JSON: object keys sorted (by their UTF-8 bytes), no whitespace,
/// strings and numbers as serde_json writes them.
pub fn canonical_json(v: &Value) -> String {
    let mut out = Vec::new();
    write_json(&mut out, v);
    // Only valid UTF-8 was written.
    String::from_utf8(out).unwrap_or_default()
}

fn write_json(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, k);
                out.push(b':');
                write_json(out, v);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, v);
            }
            out.push(b']');
        }
        leaf => {
            let _ = serde_json::to_writer(&mut *out, leaf);
        }
    }
}

/// `event` with its secrets replaced by `[REDACTED]`: every text field and every string
/// (keys included) in `detail` through `redact_patterns`; and a value whose name says it is
/// a credential, which a lone string cannot show: the argv element after a flag
/// (`--password hunter2`) and a detail value under its key (`{"db_password": "hunter2"}`),
/// judged by the redactor as the pair `name=value`.
pub fn redact(mut event: Event) -> Event {
    event.actor = match event.actor {
        super::Actor::User { id, name } => super::Actor::User {
            id: redact_patterns(&id),
            name: redact_patterns(&name),
        },
        a => a,
    };
    event.action = event.action.as_deref().map(redact_patterns);
    event.outcome = event.outcome.as_deref().map(redact_patterns);
    event.argv = event.argv.map(|argv| redact_argv(&argv));
    event.detail = redact_value(event.detail);
    event
}

fn redact_argv(argv: &[String]) -> Vec<String> {
    let mut out: Vec<String> = argv.iter().map(|a| redact_patterns(a)).collect();
    for i in 1..argv.len() {
        let flag = argv[i - 1].trim_start_matches('-');
        if argv[i - 1].starts_with('-') && !flag.is_empty() && !flag.contains('=') {
            if let Some(v) = redact_named(flag, &out[i]) {
                out[i] = v;
            }
        }
    }
    out
}

/// The value redacted as the redactor judges `name=value`; `None` when it keeps it.
fn redact_named(name: &str, value: &str) -> Option<String> {
    if value.is_empty() || value == MARK {
        return None;
    }
    let pair = format!("{name}={value}");
    let redacted = redact_patterns(&pair);
    if redacted == pair {
        return None;
    }
    // The name survived: keep what the redactor made of the value; otherwise all of it goes.
    Some(
        redacted
            .strip_prefix(&format!("{name}="))
            .map_or_else(|| MARK.to_string(), str::to_string),
    )
}

fn redact_value(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(redact_patterns(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_value).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => {
                            let s = redact_patterns(&s);
                            Value::String(redact_named(&k, &s).unwrap_or(s))
                        }
                        other => redact_value(other),
                    };
                    (redact_patterns(&k), v)
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Actor, Kind};
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn row() -> StoredEvent {
        StoredEvent {
            seq: 7,
            at: Utc
                .with_ymd_and_hms(2026, 11, 30, 1, 2, 3)
                .unwrap()
                .checked_add_signed(chrono::Duration::microseconds(45))
                .unwrap(),
            actor: Actor::User {
                id: "U024BE7LH".into(),
                name: "Ana \"the\" SRE".into(),
            },
            kind: Kind::RunExited.as_str().into(),
            incident_id: Some(42),
            proposal_id: None,
            action: Some("rollback-checkout".into()),
            argv: Some(vec!["kubectl".into(), "rollout".into(), "undo".into()]),
            outcome: Some("exit 0".into()),
            detail: canonical_json(&json!({"z": 1, "a": ["é", null]})),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn canonical_bytes_are_exactly_the_documented_form() {
        let bytes = canonical(&row());
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"action":"rollback-checkout","actor_id":"U024BE7LH","actor_name":"Ana \"the\" SRE","argv":["kubectl","rollout","undo"],"at":"2026-11-30T01:02:03.000045Z","detail":{"a":["é",null],"z":1},"incident_id":42,"kind":"run_exited","outcome":"exit 0","proposal_id":null,"seq":7,"v":1}"#
        );
    }

    #[test]
    fn hash_matches_an_independent_hmac() {
        // Computed with Python: hmac.new(b"k"*32, bytes(32) + canonical, "sha256").hexdigest()
        let key = AuditKey::new(vec![b'k'; 32]);
        let h = hex::encode(expected_hash(&key, &[0; 32], &row()));
        assert_eq!(h, include_str!("testdata/row7.hash").trim());
    }

    #[test]
    fn any_change_changes_the_hash() {
        let key = AuditKey::from_config("k");
        let base = expected_hash(&key, &[0; 32], &row());
        let mut r = row();
        r.outcome = Some("exit 1".into());
        assert_ne!(expected_hash(&key, &[0; 32], &r), base);
        let mut r = row();
        r.seq = 8;
        assert_ne!(expected_hash(&key, &[0; 32], &r), base);
        assert_ne!(expected_hash(&key, &[1; 32], &row()), base);
        assert_ne!(
            expected_hash(&AuditKey::from_config("other"), &[0; 32], &row()),
            base
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = json!({"b": {"y": 1, "x": [{"d": 2, "c": 1.5}]}, "a": "q\"\n"});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":"q\"\n","b":{"x":[{"c":1.5,"d":2}],"y":1}}"#
        );
        // Canonical text parses back to the same canonical text.
        let again: Value = serde_json::from_str(&canonical_json(&v)).unwrap();
        assert_eq!(canonical_json(&again), canonical_json(&v));
    }

    #[test]
    fn decodes_only_hex_hashes() {
        assert_eq!(decode_hash(GENESIS), Some([0; 32]));
        assert_eq!(decode_hash("zz"), None);
        assert_eq!(decode_hash(&"a".repeat(63)), None);
    }

    #[test]
    fn redacts_argv_detail_and_text() {
        let mut e = Event::new(Actor::Sentinel, Kind::Proposed);
        e.argv = Some(vec![
            "aws".into(),
            "configure".into(),
            "set".into(),
            "aws_secret_access_key".into(),
            AWS_SECRET.into(),
            "--password".into(),
            "hunter2-Xy9".into(),
            "--namespace".into(),
            "checkout".into(),
        ]);
        e.outcome = Some(format!("failed: AWS_SECRET_ACCESS_KEY={AWS_SECRET}"));
        e.detail = json!({
            "output": format!("export KEY={AWS_SECRET}"),
            "nested": [{"db_password": "s3cr3t-Value"}],
            "reason": "not an approver",
        });
        let r = redact(e);
        let all = format!("{:?}", r);
        assert!(!all.contains(AWS_SECRET), "{all}");
        assert!(!all.contains("hunter2-Xy9"), "{all}");
        assert!(!all.contains("s3cr3t-Value"), "{all}");
        let argv = r.argv.unwrap();
        assert_eq!(argv[4], MARK);
        assert_eq!(argv[6], MARK);
        assert_eq!(argv[8], "checkout", "ordinary flags stay");
        assert_eq!(r.detail["reason"], "not an approver");
    }
}
