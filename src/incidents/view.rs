//! Reading an incident back from Postgres as the views `render` draws.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, Row};

use super::render::{AlertLine, IncidentView};
use crate::alerts::model::{Link, Severity, Status};

/// The incident row's Slack bookkeeping, beside its view.
#[derive(Debug, Clone)]
pub struct IncidentRow {
    pub id: i64,
    pub channel: String,
    pub root_ts: Option<String>,
    pub root_is_ours: bool,
    pub digest_id: Option<i64>,
    pub runbook_reply_ts: Option<String>,
    /// The runbook reply was replaced by a diagnosis.
    pub diagnosed: bool,
    pub announced_status: Status,
    pub version: i64,
    /// An earlier root post may have reached Slack without its `ts` being recorded.
    pub root_attempted: bool,
    /// Likewise for the runbook reply.
    pub reply_attempted: bool,
    /// Likewise for a resolution or reopen reply: the status it announced.
    pub announce_attempted: Option<String>,
    /// When the incident opened, as a Slack `ts` lower bound for looking up posts.
    pub opened_ts: String,
}

pub async fn load_row<'e>(
    db: impl PgExecutor<'e>,
    id: i64,
) -> anyhow::Result<Option<(IncidentRow, IncidentView)>> {
    let Some(r) = sqlx::query(
        "SELECT id, alertname, channel, status, severity, summary, opened_at, resolved_at,
                reopened, root_ts, root_is_ours, digest_id, runbook_reply_ts, announced_status,
                version, diagnosed_at IS NOT NULL AS diagnosed,
                root_attempted_at IS NOT NULL AS root_attempted,
                reply_attempted_at IS NOT NULL AS reply_attempted, announce_attempted,
                (SELECT coalesce(json_agg(json_build_object(
                     'status', a.status, 'starts_at', a.starts_at, 'ends_at', a.ends_at,
                     'labels', a.labels, 'links', a.links) ORDER BY a.first_seen, a.fingerprint), '[]')
                 FROM incident_alerts a WHERE a.incident_id = i.id) AS alerts
         FROM incidents i WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
    .context("Failed to load the incident")?
    else {
        return Ok(None);
    };
    let row = IncidentRow {
        id,
        channel: r.get("channel"),
        root_ts: r.get("root_ts"),
        root_is_ours: r.get("root_is_ours"),
        digest_id: r.get("digest_id"),
        runbook_reply_ts: r.get("runbook_reply_ts"),
        diagnosed: r.get("diagnosed"),
        announced_status: Status::parse(r.get("announced_status")).unwrap_or(Status::Firing),
        version: r.get("version"),
        root_attempted: r.get("root_attempted"),
        reply_attempted: r.get("reply_attempted"),
        announce_attempted: r.get("announce_attempted"),
        opened_ts: slack_ts(r.get("opened_at")),
    };
    let alerts: Vec<Value> = serde_json::from_value(r.get("alerts")).unwrap_or_default();
    #[expect(clippy::type_complexity, reason = "a local tuple, read once below")]
    let parsed: Vec<(
        Status,
        BTreeMap<String, String>,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Vec<Link>,
    )> = alerts
        .into_iter()
        .map(|a| {
            (
                Status::parse(a["status"].as_str().unwrap_or("firing")).unwrap_or(Status::Firing),
                serde_json::from_value(a["labels"].clone()).unwrap_or_default(),
                serde_json::from_value(a["starts_at"].clone()).unwrap_or_default(),
                serde_json::from_value(a["ends_at"].clone()).unwrap_or_default(),
                serde_json::from_value(a["links"].clone()).unwrap_or_default(),
            )
        })
        .collect();
    let common = common_labels(parsed.iter().map(|p| &p.1));
    let links = parsed.first().map(|p| p.4.clone()).unwrap_or_default();
    let view = IncidentView {
        id,
        name: r.get("alertname"),
        status: Status::parse(r.get("status")).unwrap_or(Status::Firing),
        severity: Severity::parse(r.get("severity")),
        summary: r.get("summary"),
        alerts: parsed
            .into_iter()
            .map(|(status, labels, starts_at, ends_at, _)| AlertLine {
                status,
                distinct: labels
                    .into_iter()
                    .filter(|(k, v)| common.get(k) != Some(v))
                    .collect(),
                starts_at,
                ends_at,
            })
            .collect(),
        common_labels: common,
        links,
        opened_at: r.get("opened_at"),
        resolved_at: r.get("resolved_at"),
        reopened: r.get("reopened"),
    };
    Ok(Some((row, view)))
}

/// Labels with the same value on every alert.
pub fn common_labels<'a>(
    mut sets: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = sets.next() else {
        return BTreeMap::new();
    };
    let mut common = first.clone();
    for s in sets {
        common.retain(|k, v| s.get(k) == Some(v));
    }
    common
}

/// A link to a Slack message that works without knowing the workspace domain.
/// A Slack `ts` a minute before `t`: the oldest a post about it can be.
pub fn slack_ts(t: chrono::DateTime<chrono::Utc>) -> String {
    let t = t - chrono::Duration::minutes(1);
    format!("{}.000000", t.timestamp().max(0))
}

pub fn thread_link(channel: &str, ts: &str) -> String {
    format!(
        "https://slack.com/archives/{channel}/p{}",
        ts.replace('.', "")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_labels_are_the_intersection() {
        let a: BTreeMap<String, String> = [("ns", "x"), ("pod", "1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let b: BTreeMap<String, String> = [("ns", "x"), ("pod", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let c = common_labels([&a, &b].into_iter());
        assert_eq!(c.len(), 1);
        assert_eq!(c["ns"], "x");
    }

    #[test]
    fn thread_links() {
        assert_eq!(
            thread_link("C0ALERTS", "1700000000.000123"),
            "https://slack.com/archives/C0ALERTS/p1700000000000123"
        );
    }
}
