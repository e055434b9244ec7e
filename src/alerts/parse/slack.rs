//! Alert messages that Alertmanager's and Grafana's Slack integrations (or people) post in
//! watched channels, read into the same `Alert` model.
//!
//! Recognised: `bot_message` attachments titled `[FIRING:2] Name group-values (...)` with
//! the community template's `*Alert:*`/`*Description:*`/`*Runbook:*`/`*Details:*` lines or
//! Grafana's `Labels:`/`Annotations:` lists; and plain text whose first line looks like
//! `[FIRING] Name ...`, `RESOLVED: Name ...` or `ALERT Name ...`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use regex::Regex;
use serde_json::Value;

use super::ParseError;
use crate::alerts::model::{label_fingerprint, Alert, Link, Severity, SlackOrigin, Source, Status};

static TITLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        // Leading emoji (`:rotating_light:`) and punctuation, an upper-case state word
        // (optionally `[...]` with a count), the alert name, the rest.
        r"^(?:\s|:[\w+\-]+:|[^\w\[\s])*(\[)?\s*(FIRING|Firing|RESOLVED|Resolved|ALERTING|ALERT|OK)(?:\s*:\s*(\d+))?\s*\]?\s*:?\s+([A-Za-z_:][\w:.\-]*)\s*(.*)$",
    )
    .expect("static regex")
});
static DETAIL: LazyLock<Regex> = LazyLock::new(|| {
    // `• *pod:* `checkout-api`` (community template) or ` - pod = checkout-api` (Grafana).
    Regex::new(r"^\s*(?:[•\-*]\s*)?(?:\*([\w.\-]+):\*\s*`?([^`]*)`?|([\w.\-]+)\s*=\s*(.*))\s*$")
        .expect("static regex")
});
static FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*\*(Alert|Summary|Description|Runbook|Severity):\*\s*(.*)$")
        .expect("static regex")
});
static SLACK_LINK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<(https?://[^|>]+)(?:\|[^>]*)?>").expect("static regex"));

/// Parses one Slack `message` event. `Err(NotAnAlert)` for ordinary chat.
pub fn slack_message(event: &Value) -> Result<Vec<Alert>, ParseError> {
    let m = event
        .as_object()
        .ok_or_else(|| ParseError::NotAnAlert("the event is not a JSON object".into()))?;
    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
    if matches!(
        s("subtype"),
        "message_changed" | "message_deleted" | "channel_join"
    ) {
        return Err(ParseError::NotAnAlert(format!(
            "subtype `{}`",
            s("subtype")
        )));
    }
    let channel = s("channel");
    let ts = s("ts");
    if channel.is_empty() {
        return Err(ParseError::MissingField("channel".into()));
    }
    if ts.is_empty() {
        return Err(ParseError::MissingField("ts".into()));
    }
    let at = ts_time(ts)
        .ok_or_else(|| super::invalid("ts", format!("`{ts}` is not a Slack timestamp")))?;
    let origin = SlackOrigin {
        channel: channel.to_string(),
        ts: m
            .get("thread_ts")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or(ts)
            .to_string(),
    };
    let mut alerts = Vec::new();
    if let Some(Value::Array(atts)) = m.get("attachments") {
        for a in atts {
            let get = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default();
            let title = if get("title").is_empty() {
                get("fallback").split(" | ").next().unwrap_or_default()
            } else {
                get("title")
            };
            let body = [get("pretext"), get("text")].join("\n");
            let link = Some(get("title_link")).filter(|l| !l.is_empty());
            if let Some(alert) = from_parts(title, &body, link, at, &origin) {
                alerts.push(alert);
            }
        }
    }
    if alerts.is_empty() {
        let text = s("text");
        let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
        if let Some(alert) = from_parts(first, rest, None, at, &origin) {
            alerts.push(alert);
        }
    }
    if alerts.is_empty() {
        return Err(ParseError::NotAnAlert(
            "no `[FIRING]`/`[RESOLVED]` title in the message".into(),
        ));
    }
    Ok(alerts)
}

fn ts_time(ts: &str) -> Option<DateTime<Utc>> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    let secs: i64 = secs.parse().ok()?;
    let micros: u32 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    Utc.timestamp_opt(secs, micros * 1000).single()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn from_parts(
    title: &str,
    body: &str,
    title_link: Option<&str>,
    at: DateTime<Utc>,
    origin: &SlackOrigin,
) -> Option<Alert> {
    let title = parse_title(title)?;
    let Details {
        mut labels,
        mut annotations,
    } = read_body(body);
    labels.insert("alertname".into(), title.name.clone());
    let links = links(&annotations, title_link);
    if !annotations.contains_key("summary") && !title.group_values.is_empty() {
        annotations.insert("summary".into(), title.rest.clone());
    }
    let Title {
        status,
        name,
        group_values,
        ..
    } = title;
    Some(Alert {
        source: Source::Slack,
        fingerprint: label_fingerprint(&labels),
        status,
        severity: Severity::from_label(labels.get("severity").map(String::as_str)),
        group_key: format!("slack:{}:{name}:{group_values}", origin.channel),
        labels,
        annotations,
        starts_at: at,
        ends_at: (status == Status::Resolved).then_some(at),
        links,
        origin: Some(origin.clone()),
        request_id: None,
    })
}

/// What a title line says: `[FIRING:2] Name group-values (other values)`.
struct Title {
    status: Status,
    name: String,
    /// Everything after the name.
    rest: String,
    /// The values of the group labels: `rest` up to the parenthesised other values.
    group_values: String,
}

/// Reads a title line; `None` when it does not look like an alert.
fn parse_title(title: &str) -> Option<Title> {
    let title = unescape(title.trim());
    let caps = TITLE.captures(&title)?;
    let bracketed = caps.get(1).is_some();
    let status = match caps[2].to_ascii_uppercase().as_str() {
        // A bare "OK ..." is too often just chat.
        "OK" if !bracketed => return None,
        "RESOLVED" | "OK" => Status::Resolved,
        _ => Status::Firing,
    };
    let rest = caps.get(5).map_or("", |m| m.as_str()).trim().to_string();
    // `checkout (prod-eu-1 kube-state-metrics warning)`: values of the group labels, then
    // the other common label values in parentheses.
    let group_values = rest
        .split(" (")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    Some(Title {
        status,
        name: caps[4].to_string(),
        rest,
        group_values,
    })
}

/// Labels and annotations read from a message body.
#[derive(Default)]
struct Details {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// Which map the body's `key: value` detail lines go to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Labels,
    Annotations,
}

/// Reads the `*Field:*` lines and the `Labels`/`Annotations`/`*Details*` lists of a body.
fn read_body(body: &str) -> Details {
    let mut details = Details::default();
    let mut section = Section::None;
    for raw in body.lines() {
        let line = unescape(raw);
        let trimmed = line.trim();
        if let Some(s) = section_header(trimmed) {
            section = s;
            continue;
        }
        if let Some(f) = FIELD.captures(&line) {
            details.field(&f[1], f[2].trim());
            section = Section::None;
            continue;
        }
        if section == Section::None || trimmed.is_empty() {
            continue;
        }
        if let Some((k, v)) = detail(&line) {
            let target = if section == Section::Annotations {
                &mut details.annotations
            } else {
                &mut details.labels
            };
            target.insert(k, v);
        }
    }
    details
}

/// The section a (trimmed) header line opens, if it is one.
fn section_header(trimmed: &str) -> Option<Section> {
    match trimmed.trim_end_matches(':') {
        "Labels" | "*Labels*" | "*Details" | "*Details:*" => Some(Section::Labels),
        "Annotations" | "*Annotations*" => Some(Section::Annotations),
        _ => None,
    }
}

/// Key and value of a detail line: `• *pod:* `checkout-api`` or ` - pod = checkout-api`.
fn detail(line: &str) -> Option<(String, String)> {
    let d = DETAIL.captures(line)?;
    let (k, v) = match (d.get(1), d.get(2), d.get(3), d.get(4)) {
        (Some(k), Some(v), _, _) | (_, _, Some(k), Some(v)) => (k.as_str(), v.as_str()),
        _ => return None,
    };
    Some((k.to_string(), v.trim().to_string()))
}

impl Details {
    /// One `*Alert|Summary|Description|Runbook|Severity:* value` line.
    fn field(&mut self, field: &str, value: &str) {
        match field {
            "Alert" | "Summary" => {
                // `Pod is crash looping. - `warning``
                let (summary, sev) = match value.rsplit_once(" - `") {
                    Some((s, sev)) => (s, Some(sev.trim_end_matches('`'))),
                    None => (value, None),
                };
                self.annotations
                    .insert("summary".into(), summary.trim().to_string());
                if let Some(sev) = sev.filter(|s| !s.is_empty()) {
                    self.labels
                        .entry("severity".into())
                        .or_insert_with(|| sev.to_string());
                }
            }
            "Description" => {
                self.annotations
                    .insert("description".into(), value.to_string());
            }
            "Runbook" => {
                if let Some(u) = SLACK_LINK.captures(value) {
                    self.annotations
                        .insert("runbook_url".into(), u[1].to_string());
                }
            }
            _ => {
                self.labels
                    .insert("severity".into(), value.trim_matches('`').to_string());
            }
        }
    }
}

/// The runbook link (from the annotations) and the Alertmanager link (the title's).
fn links(annotations: &BTreeMap<String, String>, title_link: Option<&str>) -> Vec<Link> {
    let mut links = Vec::new();
    if let Some(u) = annotations.get("runbook_url") {
        links.push(Link {
            kind: "runbook".into(),
            url: u.clone(),
        });
    }
    if let Some(l) = title_link {
        links.push(Link {
            kind: "alertmanager".into(),
            url: unescape(l),
        });
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SAMPLE: &str = include_str!("../../../tests/data/alerts/slack-alertmanager-message.json");

    #[test]
    fn sample_alertmanager_slack_message() {
        let v: Value = serde_json::from_str(SAMPLE).unwrap();
        let alerts = slack_message(&v).unwrap();
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.source, Source::Slack);
        assert_eq!(a.name(), "KubePodCrashLooping");
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.labels["namespace"], "checkout");
        assert_eq!(a.labels["pod"], "checkout-api-7d9f8b6c5-x2k4q");
        assert_eq!(a.summary(), Some("Pod is crash looping."));
        assert!(a.description().unwrap().contains("CrashLoopBackOff"));
        assert_eq!(
            a.runbook_url(),
            Some(
                "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping"
            )
        );
        assert_eq!(a.group_key, "slack:C0ALERTS01:KubePodCrashLooping:checkout");
        assert_eq!(
            a.origin,
            Some(SlackOrigin {
                channel: "C0ALERTS01".into(),
                ts: "1763672652.331900".into()
            })
        );
        assert_eq!(a.starts_at.timestamp(), 1_763_672_652);
    }

    #[test]
    fn resolved_message_joins_the_same_group() {
        let mut v: Value = serde_json::from_str(SAMPLE).unwrap();
        let firing = slack_message(&v).unwrap().remove(0);
        v["attachments"][0]["title"] =
            "[RESOLVED] KubePodCrashLooping checkout (prod-eu-1 kube-state-metrics warning)".into();
        v["ts"] = "1763673652.000100".into();
        let resolved = slack_message(&v).unwrap().remove(0);
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(resolved.group_key, firing.group_key);
        assert_eq!(resolved.fingerprint, firing.fingerprint);
    }

    #[test]
    fn grafana_slack_message_with_label_list() {
        let v = json!({"type":"message","subtype":"bot_message","channel":"C1","ts":"1763672000.000200",
            "attachments":[{"title":"[FIRING:1] NodeFilesystemSpaceFillingUp Infrastructure (ip-10-0-3-17:9100 /var/lib/docker warning)",
            "text":"**Firing**\n\nValue: B=9.12\nLabels:\n - alertname = NodeFilesystemSpaceFillingUp\n - instance = ip-10-0-3-17:9100\n - severity = warning\nAnnotations:\n - summary = Filesystem fills up.\n"}]});
        let a = slack_message(&v).unwrap().remove(0);
        assert_eq!(a.name(), "NodeFilesystemSpaceFillingUp");
        assert_eq!(a.labels["instance"], "ip-10-0-3-17:9100");
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.summary(), Some("Filesystem fills up."));
        assert_eq!(
            a.group_key,
            "slack:C1:NodeFilesystemSpaceFillingUp:Infrastructure"
        );
    }

    #[test]
    fn plain_text_alerts() {
        for (text, status, name) in [
            ("[FIRING:3] HighCPU on web-1", Status::Firing, "HighCPU"),
            ("RESOLVED: HighCPU on web-1", Status::Resolved, "HighCPU"),
            (
                ":rotating_light: ALERT DiskFull db-2 at 97%",
                Status::Firing,
                "DiskFull",
            ),
            ("[OK] DiskFull", Status::Resolved, "DiskFull"),
        ] {
            let v = json!({"type":"message","channel":"C1","ts":"1763672000.1","text":text});
            let a = slack_message(&v).unwrap().remove(0);
            assert_eq!((a.status, a.name()), (status, name), "{text}");
        }
    }

    #[test]
    fn replies_in_existing_thread() {
        let v = json!({"channel":"C1","ts":"2.0","thread_ts":"1.0","text":"[FIRING] X"});
        assert_eq!(
            slack_message(&v).unwrap()[0].origin.as_ref().unwrap().ts,
            "1.0"
        );
    }

    #[test]
    fn ordinary_chat_and_bad_events_are_refused() {
        for v in [
            json!({"channel":"C1","ts":"1.0","text":"is anyone looking at the firing alerts?"}),
            json!({"channel":"C1","ts":"1.0","text":""}),
            json!({"channel":"C1","ts":"1.0","text":"OK thanks, looking"}),
            json!({"channel":"C1","ts":"1.0","text":"resolved: it was DNS"}),
            json!({"channel":"C1","ts":"1.0","subtype":"message_changed","text":"[FIRING] X"}),
            json!("string"),
        ] {
            assert_eq!(slack_message(&v).unwrap_err().code(), "not_an_alert", "{v}");
        }
        let e = slack_message(&json!({"ts":"1.0","text":"[FIRING] X"})).unwrap_err();
        assert_eq!(e.to_string(), "missing field `channel`");
        let e = slack_message(&json!({"channel":"C","ts":"abc","text":"[FIRING] X"})).unwrap_err();
        assert_eq!(e.code(), "invalid_field");
    }
}
