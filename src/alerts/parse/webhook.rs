//! Alertmanager webhook version 4 and Grafana unified alerting (version 1): one shape,
//! two dialects.

use serde_json::Value;

use super::{json, object, opt_str, opt_time, req_array, req_str, string_map, ParseError};
use crate::alerts::model::{label_fingerprint, Alert, Link, Severity, Source, Status};

/// Parses an Alertmanager webhook (version 4) body.
pub fn alertmanager(body: &[u8]) -> Result<Vec<Alert>, ParseError> {
    parse(&json(body)?, Source::Alertmanager, "4")
}

/// Parses a Grafana unified alerting webhook (version 1) body.
pub fn grafana(body: &[u8]) -> Result<Vec<Alert>, ParseError> {
    parse(&json(body)?, Source::Grafana, "1")
}

fn parse(v: &Value, source: Source, expected: &'static str) -> Result<Vec<Alert>, ParseError> {
    let top = object(v, "")?;
    let version = match top.get("version") {
        None | Some(Value::Null) => return Err(ParseError::MissingField("version".into())),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(super::invalid("version", "expected a string"));
        }
    };
    if version != expected {
        return Err(ParseError::UnknownVersion {
            got: version,
            expected,
        });
    }
    let group_key = req_str(top, "groupKey", "")?;
    let alerts = req_array(top, "alerts", "")?;
    let common_annotations = string_map(top.get("commonAnnotations"), "commonAnnotations")?;
    let external = opt_str(top, "externalURL", "")?;
    let scope = match source {
        // Grafana group keys are per organisation.
        Source::Grafana => format!(
            "grafana:{}:{group_key}",
            opt_str(top, "orgId", "")?.unwrap_or_default()
        ),
        _ => format!("{}:{group_key}", source.as_str()),
    };
    let message = opt_str(top, "message", "")?.filter(|_| source == Source::Grafana);
    alerts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut alert = one(
                a,
                &format!("alerts[{i}]"),
                source,
                &scope,
                &common_annotations,
                external.as_deref(),
            )?;
            use_grafana_message(&mut alert, message.as_deref());
            Ok(alert)
        })
        .collect()
}

/// Grafana's top-level `message` is its notification template rendered (by default the
/// labels and annotations again). It is kept as the `message` annotation only when the
/// alert has no `summary` or `description` of its own, where it is the only text that
/// says what is wrong; it is shown and searched like any other annotation (redacted and
/// escaped on the way to Slack and the LLM).
fn use_grafana_message(alert: &mut Alert, message: Option<&str>) {
    const MAX: usize = 2_000;
    let Some(m) = message.map(str::trim).filter(|m| !m.is_empty()) else {
        return;
    };
    let a = &mut alert.annotations;
    if !a.contains_key("summary") && !a.contains_key("description") && !a.contains_key("message") {
        a.insert("message".into(), crate::text::truncate_chars(m, MAX));
    }
}

fn one(
    v: &Value,
    path: &str,
    source: Source,
    group_key: &str,
    common_annotations: &std::collections::BTreeMap<String, String>,
    external: Option<&str>,
) -> Result<Alert, ParseError> {
    let m = object(v, path)?;
    let status_text = req_str(m, "status", path)?;
    let status = Status::parse(status_text).ok_or_else(|| {
        super::invalid(
            format!("{path}.status"),
            format!("`{status_text}` is neither `firing` nor `resolved`"),
        )
    })?;
    let labels = match m.get("labels") {
        None | Some(Value::Null) => return Err(ParseError::MissingField(format!("{path}.labels"))),
        other => string_map(other, &format!("{path}.labels"))?,
    };
    let mut annotations = string_map(m.get("annotations"), &format!("{path}.annotations"))?;
    for (k, v) in common_annotations {
        annotations.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let starts_at = opt_time(m, "startsAt", path)?
        .ok_or_else(|| ParseError::MissingField(format!("{path}.startsAt")))?;
    let ends_at = opt_time(m, "endsAt", path)?;
    let fingerprint =
        opt_str(m, "fingerprint", path)?.unwrap_or_else(|| label_fingerprint(&labels));
    let mut links = Vec::new();
    for (key, kind) in [
        ("generatorURL", "source"),
        ("dashboardURL", "dashboard"),
        ("panelURL", "panel"),
        ("silenceURL", "silence"),
    ] {
        if let Some(url) = opt_str(m, key, path)? {
            links.push(Link {
                kind: kind.into(),
                url,
            });
        }
    }
    if let Some(url) = annotations.get("runbook_url").filter(|u| !u.is_empty()) {
        links.push(Link {
            kind: "runbook".into(),
            url: url.clone(),
        });
    }
    if let (Some(ext), Source::Alertmanager) = (external, source) {
        links.push(Link {
            kind: "alertmanager".into(),
            url: ext.to_string(),
        });
    }
    Ok(Alert {
        source,
        fingerprint,
        status,
        severity: Severity::from_label(labels.get("severity").map(String::as_str)),
        labels,
        annotations,
        starts_at,
        ends_at,
        links,
        group_key: group_key.to_string(),
        origin: None,
        request_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    const AM_FIRING: &str = include_str!("../../../tests/data/alerts/alertmanager-v4-firing.json");
    const AM_RESOLVED: &str =
        include_str!("../../../tests/data/alerts/alertmanager-v4-resolved.json");
    const GRAFANA: &str = include_str!("../../../tests/data/alerts/grafana-firing.json");

    fn am(v: serde_json::Value) -> Result<Vec<Alert>, ParseError> {
        alertmanager(v.to_string().as_bytes())
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "version": "4", "groupKey": "{}:{alertname=\"X\"}", "status": "firing",
            "alerts": [{"status": "firing", "labels": {"alertname": "X"},
                        "startsAt": "2026-11-20T21:00:00Z"}]
        })
    }

    #[test]
    fn sample_firing_payload() {
        let alerts = alertmanager(AM_FIRING.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 2);
        let a = &alerts[0];
        assert_eq!(a.name(), "KubePodCrashLooping");
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.fingerprint, "a3f1c2d4e5b60718");
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.ends_at, None, "0001-01-01 means not ended");
        assert_eq!(
            a.starts_at,
            Utc.with_ymd_and_hms(2026, 11, 20, 21, 4, 12).unwrap()
                + chrono::Duration::milliseconds(331)
        );
        assert_eq!(a.summary(), Some("Pod is crash looping."));
        assert!(a.runbook_url().unwrap().ends_with("/kubepodcrashlooping"));
        assert!(a.group_key.starts_with("alertmanager:{}/{severity="));
        assert_eq!(alerts[1].group_key, a.group_key);
        assert!(a.links.iter().any(|l| l.kind == "source"));
    }

    #[test]
    fn sample_resolved_payload_with_null_common_annotations() {
        let alerts = alertmanager(AM_RESOLVED.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 2);
        assert!(alerts.iter().all(|a| a.status == Status::Resolved));
        assert!(alerts[0].ends_at.is_some());
        let firing = alertmanager(AM_FIRING.as_bytes()).unwrap();
        assert_eq!(firing[0].group_key, alerts[0].group_key);
        assert_eq!(firing[0].fingerprint, alerts[0].fingerprint);
    }

    #[test]
    fn sample_grafana_payload() {
        let alerts = grafana(GRAFANA.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.source, Source::Grafana);
        assert_eq!(a.name(), "NodeFilesystemSpaceFillingUp");
        assert!(a.group_key.starts_with("grafana:1:{}/"));
        let kinds: Vec<&str> = a.links.iter().map(|l| l.kind.as_str()).collect();
        assert!(kinds.contains(&"dashboard") && kinds.contains(&"silence"));
    }

    #[test]
    fn grafana_message_is_used_only_when_the_alert_says_nothing_itself() {
        // The sample has a summary: the rendered message adds nothing.
        let a = &grafana(GRAFANA.as_bytes()).unwrap()[0];
        assert!(!a.annotations.contains_key("message"));
        let mut v: Value = serde_json::from_str(GRAFANA).unwrap();
        v["alerts"][0]["annotations"] = serde_json::json!({});
        v["commonAnnotations"] = serde_json::json!({});
        v["message"] = "Disk on db-1 is 97% full".into();
        let a = &grafana(v.to_string().as_bytes()).unwrap()[0];
        assert_eq!(a.annotations["message"], "Disk on db-1 is 97% full");
        // Alertmanager has no such field: ignored.
        let mut m = minimal();
        m["message"] = "x".into();
        assert!(!am(m).unwrap()[0].annotations.contains_key("message"));
    }

    #[test]
    fn common_annotations_fill_gaps_but_do_not_override() {
        let mut v = minimal();
        v["commonAnnotations"] = serde_json::json!({"summary": "common", "runbook_url": "u"});
        v["alerts"][0]["annotations"] = serde_json::json!({"summary": "own"});
        let a = &am(v).unwrap()[0];
        assert_eq!(a.summary(), Some("own"));
        assert_eq!(a.runbook_url(), Some("u"));
    }

    #[test]
    fn missing_fingerprint_is_computed_from_labels() {
        let a = &am(minimal()).unwrap()[0];
        assert_eq!(a.fingerprint, label_fingerprint(&a.labels));
    }

    #[test]
    fn wrong_version_is_named() {
        let mut v = minimal();
        v["version"] = "3".into();
        let e = am(v).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown webhook version `3` (this endpoint accepts version 4)"
        );
        let e = grafana(minimal().to_string().as_bytes()).unwrap_err();
        assert_eq!(e.code(), "unknown_version");
    }

    #[test]
    fn missing_fields_are_named_with_their_path() {
        for (mutate, expected) in [
            (
                Box::new(|v: &mut serde_json::Value| {
                    v.as_object_mut().unwrap().remove("version");
                }) as Box<dyn Fn(&mut serde_json::Value)>,
                "missing field `version`",
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("alerts");
                }),
                "missing field `alerts`",
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("groupKey");
                }),
                "missing field `groupKey`",
            ),
            (
                Box::new(|v| {
                    v["alerts"][0].as_object_mut().unwrap().remove("labels");
                }),
                "missing field `alerts[0].labels`",
            ),
            (
                Box::new(|v| {
                    v["alerts"][0].as_object_mut().unwrap().remove("startsAt");
                }),
                "missing field `alerts[0].startsAt`",
            ),
            (
                Box::new(|v| {
                    v["alerts"][0].as_object_mut().unwrap().remove("status");
                }),
                "missing field `alerts[0].status`",
            ),
        ] {
            let mut v = minimal();
            mutate(&mut v);
            assert_eq!(am(v).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn invalid_values_are_explained() {
        let mut v = minimal();
        v["alerts"][0]["startsAt"] = "yesterday".into();
        let e = am(v).unwrap_err().to_string();
        assert!(
            e.contains("alerts[0].startsAt") && e.contains("yesterday"),
            "{e}"
        );
        let mut v = minimal();
        v["alerts"][0]["status"] = "sleeping".into();
        assert!(am(v).unwrap_err().to_string().contains("sleeping"));
        let mut v = minimal();
        v["alerts"][0]["labels"] = serde_json::json!({"a": {"nested": 1}});
        assert!(am(v)
            .unwrap_err()
            .to_string()
            .contains("alerts[0].labels.a"));
        let mut v = minimal();
        v["alerts"] = serde_json::json!({});
        assert_eq!(
            am(v).unwrap_err().to_string(),
            "field `alerts` is invalid: expected an array"
        );
    }

    #[test]
    fn malformed_json_and_non_objects() {
        assert_eq!(
            alertmanager(b"{\"version\":").unwrap_err().code(),
            "malformed_json"
        );
        assert_eq!(alertmanager(b"").unwrap_err().code(), "malformed_json");
        assert_eq!(
            alertmanager(b"[1,2]").unwrap_err().to_string(),
            "field `(body)` is invalid: expected a JSON object"
        );
    }

    #[test]
    fn null_annotations_and_numeric_label_values_are_accepted() {
        let mut v = minimal();
        v["alerts"][0]["annotations"] = serde_json::Value::Null;
        v["alerts"][0]["labels"]["code"] = 503.into();
        let a = &am(v).unwrap()[0];
        assert!(a.annotations.is_empty());
        assert_eq!(a.labels["code"], "503");
    }

    #[test]
    fn empty_alert_list_is_not_an_error() {
        let mut v = minimal();
        v["alerts"] = serde_json::json!([]);
        assert!(am(v).unwrap().is_empty());
    }
}
