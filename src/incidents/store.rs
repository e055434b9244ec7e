//! The intake log: alerts stored in one multi-row statement per batch, de-duplicated on
//! (fingerprint, status, startsAt).

use anyhow::Context;
use serde_json::Value;
use sqlx::PgPool;

use crate::alerts::Alert;

/// What one batch insert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    /// New rows.
    pub stored: usize,
    /// Alerts already stored (a redelivery, or the same alert twice in the batch).
    pub duplicates: usize,
}

/// Stores alerts in one statement; duplicates are skipped. Returns the counts.
pub async fn insert_alerts(pool: &PgPool, alerts: &[&Alert]) -> anyhow::Result<Stored> {
    if alerts.is_empty() {
        return Ok(Stored::default());
    }
    // One lock order for every writer: concurrent batches with overlapping alerts cannot
    // deadlock on the unique index.
    let mut alerts = alerts.to_vec();
    alerts.sort_by(|a, b| {
        (&a.fingerprint, a.status.as_str(), a.starts_at).cmp(&(
            &b.fingerprint,
            b.status.as_str(),
            b.starts_at,
        ))
    });
    let n = alerts.len();
    let mut source = Vec::with_capacity(n);
    let mut fingerprint = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut starts = Vec::with_capacity(n);
    let mut ends = Vec::with_capacity(n);
    let mut group = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut severity = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    let mut annotations = Vec::with_capacity(n);
    let mut links = Vec::with_capacity(n);
    let mut origin = Vec::with_capacity(n);
    let mut request = Vec::with_capacity(n);
    for a in &alerts {
        source.push(a.source.as_str());
        fingerprint.push(a.fingerprint.as_str());
        status.push(a.status.as_str());
        starts.push(a.starts_at);
        ends.push(a.ends_at);
        group.push(a.group_key.as_str());
        name.push(a.name());
        severity.push(a.severity.as_str());
        labels.push(serde_json::to_value(&a.labels)?);
        annotations.push(serde_json::to_value(&a.annotations)?);
        links.push(serde_json::to_value(&a.links)?);
        origin.push(
            a.origin
                .as_ref()
                .map(serde_json::to_value)
                .transpose()?
                .unwrap_or(Value::Null),
        );
        request.push(a.request_id.as_deref());
    }
    let inserted = sqlx::query(
        "INSERT INTO alerts (source, fingerprint, status, starts_at, ends_at, group_key, alertname,
                             severity, labels, annotations, links, origin, request_id)
         SELECT s, f, st, sa, ea, g, n, sev, l, an, li, NULLIF(o, 'null'::jsonb), r
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                     $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::jsonb[], $11::jsonb[],
                     $12::jsonb[], $13::text[])
              AS t(s, f, st, sa, ea, g, n, sev, l, an, li, o, r)
         ON CONFLICT (fingerprint, status, starts_at) DO NOTHING",
    )
    .bind(&source)
    .bind(&fingerprint)
    .bind(&status)
    .bind(&starts)
    .bind(&ends)
    .bind(&group)
    .bind(&name)
    .bind(&severity)
    .bind(&labels)
    .bind(&annotations)
    .bind(&links)
    .bind(&origin)
    .bind(&request)
    .execute(pool)
    .await
    .context("Failed to store alerts")?
    .rows_affected() as usize;
    Ok(Stored {
        stored: inserted,
        duplicates: n - inserted,
    })
}

/// Alerts stored and not yet applied to incidents (for readiness and benchmarks).
pub async fn pending_count(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM alerts WHERE processed_at IS NULL")
            .fetch_one(pool)
            .await?,
    )
}
