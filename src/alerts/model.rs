//! The one alert model every source is parsed into.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where an alert came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Alertmanager,
    Grafana,
    Generic,
    Slack,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Grafana => "grafana",
            Source::Generic => "generic",
            Source::Slack => "slack",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "alertmanager" => Source::Alertmanager,
            "grafana" => Source::Grafana,
            "generic" => Source::Generic,
            "slack" => Source::Slack,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }

    /// Accepts the spellings the senders use (`firing`, `alerting`, `resolved`, `ok`, `normal`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "firing" | "alerting" | "alert" | "problem" | "pending" => Some(Status::Firing),
            "resolved" | "ok" | "normal" | "recovered" => Some(Status::Resolved),
            _ => None,
        }
    }
}

/// Severity from the `severity` label, normalised; ordering is by urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Unknown,
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn from_label(v: Option<&str>) -> Self {
        match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("critical" | "crit" | "page" | "p1" | "error" | "high" | "disaster") => {
                Severity::Critical
            }
            Some("warning" | "warn" | "p2" | "p3" | "medium" | "average") => Severity::Warning,
            Some("info" | "informational" | "none" | "low" | "p4" | "p5") => Severity::Info,
            _ => Severity::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Self {
        Self::from_label(Some(s))
    }
}

/// A link shown with the alert (graph, runbook, silence, dashboard, panel, source message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub kind: String,
    pub url: String,
}

/// The Slack message an alert was read from (channel messages only): Sentinel replies in
/// its thread instead of posting a root of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackOrigin {
    pub channel: String,
    pub ts: String,
}

/// One alert, whatever its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub source: Source,
    /// Identity of the alert series (the sender's fingerprint, or a hash of its labels).
    pub fingerprint: String,
    pub status: Status,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub severity: Severity,
    pub starts_at: DateTime<Utc>,
    /// `None` while firing (Alertmanager's `0001-01-01T00:00:00Z` means "not ended").
    pub ends_at: Option<DateTime<Utc>>,
    pub links: Vec<Link>,
    /// Alerts with the same group key belong to one incident.
    pub group_key: String,
    pub origin: Option<SlackOrigin>,
    /// The request that brought it (a webhook's `X-Request-ID`, or the Slack event id), for
    /// log correlation only: never shown, never part of its identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Alert {
    /// The `alertname` label, or `unnamed alert`.
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("unnamed alert")
    }

    pub fn summary(&self) -> Option<&str> {
        ["summary", "message", "title"]
            .iter()
            .find_map(|k| self.annotations.get(*k))
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
    }

    pub fn description(&self) -> Option<&str> {
        self.annotations
            .get("description")
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
    }

    pub fn runbook_url(&self) -> Option<&str> {
        self.annotations
            .get("runbook_url")
            .or_else(|| self.annotations.get("runbook"))
            .map(String::as_str)
            .or_else(|| {
                self.links
                    .iter()
                    .find(|l| l.kind == "runbook")
                    .map(|l| l.url.as_str())
            })
            .filter(|s| !s.trim().is_empty())
    }
}

/// A stable fingerprint from labels (used when the sender gives none): 16 hex digits of
/// SHA-256 over the sorted `name=value` pairs.
pub fn label_fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0xff]);
        h.update(v.as_bytes());
        h.update([0xfe]);
    }
    hex::encode(&h.finalize()[..8])
}

/// `{a="1", b="2"}` in label order, as Alertmanager writes group keys.
pub fn label_set(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprint_depends_on_labels_only_not_order() {
        let a = labels(&[("alertname", "X"), ("pod", "p1")]);
        let b = labels(&[("pod", "p1"), ("alertname", "X")]);
        let c = labels(&[("alertname", "X"), ("pod", "p2")]);
        assert_eq!(label_fingerprint(&a), label_fingerprint(&b));
        assert_ne!(label_fingerprint(&a), label_fingerprint(&c));
        assert_eq!(label_fingerprint(&a).len(), 16);
    }

    #[test]
    fn fingerprint_separates_key_and_value_boundaries() {
        let a = labels(&[("ab", "c")]);
        let b = labels(&[("a", "bc")]);
        assert_ne!(label_fingerprint(&a), label_fingerprint(&b));
    }

    #[test]
    fn severity_and_status_spellings() {
        assert_eq!(Severity::from_label(Some("CRITICAL")), Severity::Critical);
        assert_eq!(Severity::from_label(Some("warning")), Severity::Warning);
        assert_eq!(Severity::from_label(None), Severity::Unknown);
        assert_eq!(Status::parse("alerting"), Some(Status::Firing));
        assert_eq!(Status::parse("OK"), Some(Status::Resolved));
        assert_eq!(Status::parse("maybe"), None);
    }

    #[test]
    fn label_set_is_alertmanager_style() {
        let l = labels(&[("b", "2"), ("a", "1")]);
        assert_eq!(label_set(&l), "{a=\"1\", b=\"2\"}");
    }
}
