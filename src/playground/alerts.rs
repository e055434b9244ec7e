//! The alerts the page fires, checked without I/O: the editor's text for a webhook, an
//! Alertmanager alert built from the form, a small storm, as the payloads Alertmanager
//! would send.

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The largest storm the page may start: enough to trip the storm digest, no more.
pub const MAX_STORM: usize = 30;

/// Where a forwarded alert goes: `/hooks/<source>`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Alertmanager,
    Grafana,
    Generic,
}

impl Hook {
    pub fn path(self) -> &'static str {
        match self {
            Hook::Alertmanager => "/hooks/alertmanager",
            Hook::Grafana => "/hooks/grafana",
            Hook::Generic => "/hooks/generic",
        }
    }
}

/// An alert to fire from the page.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AlertRequest {
    /// The editor's text, sent as is (malformed JSON included: the webhook judges it).
    Raw { hook: Hook, body: String },
    /// The form: one Alertmanager alert.
    Form(AlertForm),
    /// `count` distinct alerts at once.
    Storm { count: usize },
}

#[derive(Debug, Deserialize)]
pub struct AlertForm {
    pub alertname: String,
    #[serde(default)]
    pub severity: String,
    /// `key=value` lines.
    #[serde(default)]
    pub labels: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub description: String,
    /// Send it resolved.
    #[serde(default)]
    pub resolved: bool,
}

fn label_name_ok(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `key=value` lines (blank lines skipped) as labels.
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("label line {}: write it as key=value", i + 1))?;
        let (k, v) = (k.trim(), v.trim());
        if !label_name_ok(k) {
            return Err(format!(
                "label line {}: `{k}` is not a label name (letters, digits, _)",
                i + 1
            ));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

impl AlertForm {
    /// The Alertmanager v4 webhook body for this alert; `now` is its start (RFC 3339).
    pub fn webhook_body(&self, now: &str) -> Result<String, String> {
        let name = self.alertname.trim();
        if name.is_empty() {
            return Err("an alert needs a name".into());
        }
        if !label_name_ok(name) {
            return Err(format!(
                "`{name}` is not an alert name (letters, digits, _)"
            ));
        }
        let mut labels = serde_json::Map::new();
        labels.insert("alertname".into(), json!(name));
        let severity = self.severity.trim();
        labels.insert(
            "severity".into(),
            json!(if severity.is_empty() {
                "warning"
            } else {
                severity
            }),
        );
        for (k, v) in parse_labels(&self.labels)? {
            labels.insert(k, json!(v));
        }
        let mut annotations = serde_json::Map::new();
        for (k, v) in [
            ("summary", &self.summary),
            ("description", &self.description),
        ] {
            if !v.trim().is_empty() {
                annotations.insert(k.into(), json!(v.trim()));
            }
        }
        let labels = Value::Object(labels);
        let fingerprint = fingerprint(&labels);
        let status = if self.resolved { "resolved" } else { "firing" };
        Ok(alertmanager_body(
            status,
            name,
            labels,
            Value::Object(annotations),
            &fingerprint,
            now,
        ))
    }
}

/// A stable fingerprint of a label set (Alertmanager's is a hash of the labels too), so
/// firing and resolving the same form alert name the same series.
fn fingerprint(labels: &Value) -> String {
    let digest = Sha256::digest(labels.to_string().as_bytes());
    hex::encode(&digest[..8])
}

fn alertmanager_body(
    status: &str,
    name: &str,
    labels: Value,
    annotations: Value,
    fingerprint: &str,
    now: &str,
) -> String {
    let group_labels = json!({"alertname": name});
    let ends_at = if status == "resolved" {
        now
    } else {
        "0001-01-01T00:00:00Z"
    };
    json!({
        "version": "4", "status": status, "receiver": "sentinel",
        "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"),
        "groupLabels": group_labels, "commonLabels": labels, "commonAnnotations": annotations,
        "externalURL": "http://alertmanager.playground", "truncatedAlerts": 0,
        "alerts": [{
            "status": status, "labels": labels, "annotations": annotations,
            "startsAt": now, "endsAt": ends_at,
            "generatorURL": "http://prometheus.playground/graph", "fingerprint": fingerprint,
        }],
    })
    .to_string()
}

/// `count` distinct firing alerts (one webhook body each), as a small storm sends them.
pub fn storm(count: usize, now: &str, run: &str) -> Result<Vec<String>, String> {
    if count == 0 || count > MAX_STORM {
        return Err(format!("a storm here is 1 to {MAX_STORM} alerts"));
    }
    let services = ["checkout", "cart", "search", "payments", "auth", "catalog"];
    Ok((0..count)
        .map(|i| {
            let service = services[i % services.len()];
            let name = format!("PlaygroundStorm{run}N{i}");
            let labels = json!({
                "alertname": name, "service": service, "severity": "warning", "storm": run,
            });
            let annotations = json!({
                "summary": format!("{service} latency above its objective (storm alert {} of {count})", i + 1),
            });
            let fp = fingerprint(&labels);
            alertmanager_body("firing", &name, labels, annotations, &fp, now)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_builds_an_alertmanager_payload_the_parser_accepts() {
        let form = AlertForm {
            alertname: "DemoServiceDown".into(),
            severity: "critical".into(),
            labels: "service = web\n\nnamespace=prod".into(),
            summary: "web is down".into(),
            description: String::new(),
            resolved: false,
        };
        let body = form.webhook_body("2026-11-30T10:00:00Z").unwrap();
        let alerts = crate::alerts::parse::alertmanager(body.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].name(), "DemoServiceDown");
        assert_eq!(alerts[0].labels["service"], "web");
        assert_eq!(alerts[0].labels["namespace"], "prod");
        assert_eq!(alerts[0].severity.as_str(), "critical");
        let resolved = AlertForm {
            resolved: true,
            ..form
        }
        .webhook_body("2026-11-30T10:05:00Z")
        .unwrap();
        let r = crate::alerts::parse::alertmanager(resolved.as_bytes()).unwrap();
        assert_eq!(r[0].fingerprint, alerts[0].fingerprint, "same series");
        assert_eq!(r[0].group_key, alerts[0].group_key);
    }

    #[test]
    fn the_form_refuses_bad_names_and_labels() {
        let form = |name: &str, labels: &str| AlertForm {
            alertname: name.into(),
            severity: String::new(),
            labels: labels.into(),
            summary: String::new(),
            description: String::new(),
            resolved: false,
        };
        let now = "2026-11-30T10:00:00Z";
        assert_eq!(
            form("", "").webhook_body(now).unwrap_err(),
            "an alert needs a name"
        );
        assert!(form("bad name", "").webhook_body(now).is_err());
        assert_eq!(
            form("Ok", "service web").webhook_body(now).unwrap_err(),
            "label line 1: write it as key=value"
        );
        assert!(form("Ok", "a=1\n9x=2")
            .webhook_body(now)
            .unwrap_err()
            .starts_with("label line 2"));
    }

    #[test]
    fn a_storm_is_distinct_alerts_within_bounds() {
        let bodies = storm(5, "2026-11-30T10:00:00Z", "r1").unwrap();
        assert_eq!(bodies.len(), 5);
        let mut keys: Vec<String> = bodies
            .iter()
            .map(|b| {
                crate::alerts::parse::alertmanager(b.as_bytes()).unwrap()[0]
                    .group_key
                    .clone()
            })
            .collect();
        keys.dedup();
        assert_eq!(keys.len(), 5);
        assert!(storm(0, "x", "r").is_err());
        assert!(storm(MAX_STORM + 1, "x", "r").is_err());
    }
}
