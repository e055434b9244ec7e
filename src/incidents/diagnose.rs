//! An incident as the diagnosis pipeline sees it: its first alert's labels and annotations.

use std::collections::BTreeMap;

use anyhow::Context;
use sqlx::PgPool;

use super::render::IncidentView;
use crate::diagnosis::Subject;

/// The budget key for an incident's LLM calls (also used by questions in its thread).
pub fn incident_key(id: i64) -> String {
    format!("incident-{id}")
}

/// The diagnosis subject for incident `id`: the earliest alert's labels and annotations,
/// the incident's name, severity and status.
pub async fn subject(pool: &PgPool, id: i64, view: &IncidentView) -> anyhow::Result<Subject> {
    let row: Option<(serde_json::Value, serde_json::Value)> = sqlx::query_as(
        "SELECT labels, annotations FROM incident_alerts WHERE incident_id = $1
         ORDER BY first_seen, fingerprint LIMIT 1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("Failed to read the incident's alert")?;
    let (labels, annotations): (BTreeMap<String, String>, BTreeMap<String, String>) = match row {
        Some((l, a)) => (
            serde_json::from_value(l).unwrap_or_default(),
            serde_json::from_value(a).unwrap_or_default(),
        ),
        None => (view.common_labels.clone(), BTreeMap::new()),
    };
    Ok(Subject {
        incident_key: Some(incident_key(id)),
        alert_name: view.name.clone(),
        severity: Some(view.severity.as_str().to_string()),
        status: view.status.as_str().to_string(),
        labels,
        annotations,
        thread_context: Vec::new(),
    })
}

/// The incident whose thread a Slack message is in, if any.
pub async fn incident_for_thread(
    pool: &PgPool,
    channel: &str,
    thread_ts: &str,
) -> anyhow::Result<Option<i64>> {
    sqlx::query_scalar("SELECT id FROM incidents WHERE channel = $1 AND root_ts = $2")
        .bind(channel)
        .bind(thread_ts)
        .fetch_optional(pool)
        .await
        .context("Failed to look up the thread's incident")
}
