//! The generic webhook format, for senders that are neither Alertmanager nor Grafana.
//!
//! A body is one alert object or `{"alerts": [ ... ]}`. Fields of an alert:
//!
//! | field | required | meaning |
//! |---|---|---|
//! | `name` | yes | alert name (becomes the `alertname` label) |
//! | `status` | no | `firing` (default) or `resolved` |
//! | `severity` | no | `critical`, `warning`, `info` (also read from `labels.severity`) |
//! | `summary`, `description`, `runbook_url` | no | shown in Slack, used for runbook search |
//! | `labels`, `annotations` | no | objects of strings |
//! | `starts_at`, `ends_at` | no | RFC 3339; `starts_at` defaults to the time received |
//! | `fingerprint` | no | identity of the alert series; default: hash of name + labels |
//! | `group` | no | alerts with the same group share one incident; default: the name |
//! | `links` | no | `[{"kind": "dashboard", "url": "https://..."}]` |
//!
//! ```json
//! {"name": "DiskFull", "severity": "critical", "labels": {"host": "db-1"},
//!  "summary": "Disk on db-1 is 97% full"}
//! ```

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{invalid, join, json, object, opt_str, opt_time, req_str, string_map, ParseError};
use crate::alerts::model::{label_fingerprint, Alert, Link, Severity, Source, Status};

/// Parses a generic webhook body; `now` stands in for a missing `starts_at`.
pub fn generic(body: &[u8], now: DateTime<Utc>) -> Result<Vec<Alert>, ParseError> {
    let v = json(body)?;
    let top = object(&v, "")?;
    match top.get("alerts") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, a)| one(a, &format!("alerts[{i}]"), now))
            .collect(),
        Some(_) => Err(invalid("alerts", "expected an array")),
        None => Ok(vec![one(&v, "", now)?]),
    }
}

fn one(v: &Value, path: &str, now: DateTime<Utc>) -> Result<Alert, ParseError> {
    let m = object(v, path)?;
    let name = req_str(m, "name", path)?.trim().to_string();
    if name.is_empty() {
        return Err(invalid(join(path, "name"), "must not be empty"));
    }
    let status = match opt_str(m, "status", path)? {
        None => Status::Firing,
        Some(s) => Status::parse(&s).ok_or_else(|| {
            invalid(
                join(path, "status"),
                format!("`{s}` is neither `firing` nor `resolved`"),
            )
        })?,
    };
    let mut labels = string_map(m.get("labels"), &join(path, "labels"))?;
    labels.insert("alertname".into(), name.clone());
    let severity_text = opt_str(m, "severity", path)?;
    if let Some(s) = &severity_text {
        labels.entry("severity".into()).or_insert_with(|| s.clone());
    }
    let mut annotations = string_map(m.get("annotations"), &join(path, "annotations"))?;
    for key in ["summary", "description", "runbook_url"] {
        if let Some(s) = opt_str(m, key, path)? {
            annotations.insert(key.into(), s);
        }
    }
    let mut links = Vec::new();
    match m.get("links") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, l) in items.iter().enumerate() {
                let p = format!("{}[{i}]", join(path, "links"));
                let lm = object(l, &p)?;
                links.push(Link {
                    kind: opt_str(lm, "kind", &p)?.unwrap_or_else(|| "link".into()),
                    url: req_str(lm, "url", &p)?.to_string(),
                });
            }
        }
        Some(_) => return Err(invalid(join(path, "links"), "expected an array")),
    }
    if let Some(url) = annotations.get("runbook_url") {
        links.push(Link {
            kind: "runbook".into(),
            url: url.clone(),
        });
    }
    let starts_at = opt_time(m, "starts_at", path)?.unwrap_or(now);
    let ends_at = opt_time(m, "ends_at", path)?;
    let fingerprint =
        opt_str(m, "fingerprint", path)?.unwrap_or_else(|| label_fingerprint(&labels));
    let group = opt_str(m, "group", path)?.unwrap_or_else(|| name.clone());
    Ok(Alert {
        source: Source::Generic,
        fingerprint,
        status,
        severity: Severity::from_label(labels.get("severity").map(String::as_str)),
        labels,
        annotations,
        starts_at,
        ends_at,
        links,
        group_key: format!("generic:{group}"),
        origin: None,
        request_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 1, 0, 0).unwrap()
    }

    #[test]
    fn single_alert_with_defaults() {
        let a = generic(
            br#"{"name":"DiskFull","severity":"critical","labels":{"host":"db-1"},"summary":"Disk 97% full"}"#,
            now(),
        )
        .unwrap();
        assert_eq!(a.len(), 1);
        let a = &a[0];
        assert_eq!(a.name(), "DiskFull");
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.starts_at, now());
        assert_eq!(a.summary(), Some("Disk 97% full"));
        assert_eq!(a.group_key, "generic:DiskFull");
        assert_eq!(a.labels["host"], "db-1");
    }

    #[test]
    fn list_with_group_links_and_resolution() {
        let a = generic(
            br#"{"alerts":[
                {"name":"A","group":"db","status":"resolved","ends_at":"2026-11-21T00:59:00Z",
                 "links":[{"kind":"dashboard","url":"https://g/d"}],"runbook_url":"https://r/a"},
                {"name":"B","group":"db","fingerprint":"fp-b"}]}"#,
            now(),
        )
        .unwrap();
        assert_eq!(a[0].status, Status::Resolved);
        assert!(a[0].ends_at.is_some());
        assert_eq!(a[0].group_key, a[1].group_key);
        assert_eq!(a[0].runbook_url(), Some("https://r/a"));
        assert_eq!(a[0].links[0].kind, "dashboard");
        assert_eq!(a[1].fingerprint, "fp-b");
    }

    #[test]
    fn errors_name_the_field() {
        let cases: [(&[u8], &str); 6] = [
            (br#"{"severity":"critical"}"#, "missing field `name`"),
            (
                br#"{"name":"  "}"#,
                "field `name` is invalid: must not be empty",
            ),
            (
                br#"{"alerts":[{"name":"A"},{}]}"#,
                "missing field `alerts[1].name`",
            ),
            (
                br#"{"alerts":{}}"#,
                "field `alerts` is invalid: expected an array",
            ),
            (
                br#"{"name":"A","links":[{"kind":"x"}]}"#,
                "missing field `links[0].url`",
            ),
            (
                br#"{"name":"A","status":"meh"}"#,
                "field `status` is invalid: `meh` is neither `firing` nor `resolved`",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(generic(body, now()).unwrap_err().to_string(), expected);
        }
        assert_eq!(
            generic(b"nope", now()).unwrap_err().code(),
            "malformed_json"
        );
    }
}
