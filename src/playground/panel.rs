//! "What Sentinel is doing": the alert channel's incidents, the action proposals by state,
//! and the audit log's last entries with the result of `sentinel audit verify`.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::audit::AuditKey;

/// Rows shown per list.
const SHOWN: i64 = 30;

/// The panel as one JSON object (`GET /api/panel`).
pub async fn panel(pool: &PgPool, key: &AuditKey, channel: &str) -> anyhow::Result<Value> {
    let (incidents, actions, audit, verify) = tokio::try_join!(
        incidents(pool, channel),
        actions(pool, channel),
        crate::audit::recent(pool, None, SHOWN),
        crate::audit::verify(pool, key),
    )?;
    Ok(json!({
        "incidents": incidents,
        "actions": actions,
        "audit": audit.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        "verify": verify.to_json(),
        "verify_summary": verify.summary(),
    }))
}

type IncidentRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

async fn incidents(pool: &PgPool, channel: &str) -> anyhow::Result<Vec<Value>> {
    let rows: Vec<IncidentRow> = sqlx::query_as(
        "SELECT id, alertname, status, severity, summary, root_ts, opened_at, diagnosed_at
         FROM incidents WHERE channel = $1 ORDER BY (status = 'firing') DESC, id DESC LIMIT $2",
    )
    .bind(channel)
    .bind(SHOWN)
    .fetch_all(pool)
    .await
    .context("Failed to read incidents")?;
    Ok(rows
        .into_iter()
        .map(
            |(id, name, status, severity, summary, root_ts, opened, diagnosed)| {
                json!({
                    "id": id, "alertname": name, "status": status, "severity": severity,
                    "summary": summary, "root_ts": root_ts, "opened_at": opened,
                    "diagnosed": diagnosed.is_some(),
                })
            },
        )
        .collect())
}

type ActionRow = (
    i64,
    Option<i64>,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<i32>,
    Option<String>,
    DateTime<Utc>,
);

async fn actions(pool: &PgPool, channel: &str) -> anyhow::Result<Vec<Value>> {
    let rows: Vec<ActionRow> = sqlx::query_as(
        "SELECT id, incident_id, action_id, title, risk, state, decided_by, exit_code,
                message_ts, updated_at
         FROM action_proposals WHERE channel = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(channel)
    .bind(SHOWN)
    .fetch_all(pool)
    .await
    .context("Failed to read action proposals")?;
    Ok(rows
        .into_iter()
        .map(
            |(id, incident, action, title, risk, state, decided_by, exit, ts, updated)| {
                json!({
                    "id": id, "incident_id": incident, "action": action, "title": title,
                    "risk": risk, "state": state, "decided_by": decided_by, "exit_code": exit,
                    "message_ts": ts, "updated_at": updated,
                })
            },
        )
        .collect())
}
