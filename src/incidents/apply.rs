//! Applying stored alerts to incidents, in one transaction per batch.
//!
//! Batches are serialised across replicas by a transaction-scoped advisory lock, so group
//! creation, storm counting and reopen decisions never race. Per alert series the newest
//! state wins: a later `startsAt` replaces, and for the same `startsAt` resolved beats
//! firing, so a late firing redelivery cannot undo a resolution.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, Row, Transaction};

use super::engine::{EngineConfig, StormConfig};
use crate::alerts::model::{Alert, Severity, SlackOrigin, Source, Status};

/// Advisory lock key for applying alerts (`sentinel` apply, arbitrary but fixed).
const APPLY_LOCK: i64 = 7_315_200;

pub(crate) async fn apply_pending(
    pool: &PgPool,
    config: &EngineConfig,
    limit: i64,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPLY_LOCK)
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "SELECT id, source, fingerprint, status, starts_at, ends_at, group_key, severity,
                labels, annotations, links, origin, request_id
         FROM alerts WHERE processed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .context("Failed to read pending alerts")?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(rows.len());
    // Group order follows arrival order of each group's first alert.
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<Alert>> = BTreeMap::new();
    for r in &rows {
        ids.push(r.get::<i64, _>("id"));
        let a = row_alert(r)?;
        if !groups.contains_key(&a.group_key) {
            order.push(a.group_key.clone());
        }
        groups.entry(a.group_key.clone()).or_default().push(a);
    }
    for key in order {
        let alerts = groups.remove(&key).unwrap_or_default();
        apply_group(config, &mut tx, &key, alerts).await?;
    }
    sqlx::query("UPDATE alerts SET processed_at = now() WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit()
        .await
        .context("Failed to commit applied alerts")?;
    Ok(ids.len())
}

fn row_alert(r: &sqlx::postgres::PgRow) -> anyhow::Result<Alert> {
    let map = |v: Value| serde_json::from_value::<BTreeMap<String, String>>(v).unwrap_or_default();
    let origin: Option<Value> = r.get("origin");
    Ok(Alert {
        source: Source::parse(r.get("source")).unwrap_or(Source::Generic),
        fingerprint: r.get("fingerprint"),
        status: Status::parse(r.get("status")).unwrap_or(Status::Firing),
        labels: map(r.get("labels")),
        annotations: map(r.get("annotations")),
        severity: Severity::parse(r.get("severity")),
        starts_at: r.get("starts_at"),
        ends_at: r.get("ends_at"),
        links: serde_json::from_value(r.get("links")).unwrap_or_default(),
        group_key: r.get("group_key"),
        origin: origin.and_then(|o| serde_json::from_value::<SlackOrigin>(o).ok()),
        request_id: r.get("request_id"),
    })
}

/// Newest state per fingerprint within the batch (same rule as the database upsert).
fn newest_per_series(alerts: Vec<Alert>) -> Vec<Alert> {
    let mut by_fp: BTreeMap<String, Alert> = BTreeMap::new();
    for a in alerts {
        match by_fp.get(&a.fingerprint) {
            Some(cur) if !newer(&a, cur) => {}
            _ => {
                by_fp.insert(a.fingerprint.clone(), a);
            }
        }
    }
    by_fp.into_values().collect()
}

fn newer(a: &Alert, than: &Alert) -> bool {
    a.starts_at > than.starts_at
        || (a.starts_at == than.starts_at
            && a.status == Status::Resolved
            && than.status == Status::Firing)
}

async fn apply_group(
    config: &EngineConfig,
    tx: &mut Transaction<'_, Postgres>,
    group_key: &str,
    alerts: Vec<Alert>,
) -> anyhow::Result<()> {
    let requests = request_ids(&alerts);
    let received = alerts.len();
    let alerts = newest_per_series(alerts);
    let Some(first) = alerts.first() else {
        return Ok(());
    };
    let before = find_or_open(config, tx, group_key, first).await?;
    let changed = upsert_alerts(tx, before.id, &alerts).await?;
    if changed.rows == 0 && !before.is_new {
        return Ok(());
    }
    let firing_now: bool = sqlx::query_scalar(
        "SELECT coalesce(bool_or(status = 'firing'), false) FROM incident_alerts WHERE incident_id = $1",
    )
    .bind(before.id)
    .fetch_one(&mut **tx)
    .await?;
    let status = if firing_now {
        Status::Firing
    } else {
        Status::Resolved
    };
    let reopened = !before.is_new && before.status == Status::Resolved && status == Status::Firing;
    let severity = alerts
        .iter()
        .filter(|a| a.status == Status::Firing)
        .map(|a| a.severity)
        .fold(before.severity, Ord::max);
    update_incident(tx, &before, status, severity, reopened, requests.as_deref()).await?;
    tracing::info!(
        incident_id = before.id,
        request_id = requests.as_deref().unwrap_or(""),
        alerts = received,
        status = status.as_str(),
        new = before.is_new,
        reopened,
        "alerts applied to incident"
    );
    record_events(tx, &before, &changed, status, reopened).await
}

/// At most this many request ids are kept per change of an incident (logs only).
const MAX_REQUEST_IDS: usize = 8;

/// The distinct requests that brought `alerts`, in arrival order, comma-separated: the
/// incident's lines in the log carry them (`request_id`).
fn request_ids(alerts: &[Alert]) -> Option<String> {
    let mut ids: Vec<&str> = Vec::new();
    for id in alerts.iter().filter_map(|a| a.request_id.as_deref()) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let more = ids.len().saturating_sub(MAX_REQUEST_IDS);
    ids.truncate(MAX_REQUEST_IDS);
    let mut joined = ids.join(",");
    if more > 0 {
        joined.push_str(&format!(",+{more} more"));
    }
    (!joined.is_empty()).then_some(joined)
}

/// An incident as it was before this batch.
struct Before {
    id: i64,
    status: Status,
    severity: Severity,
    digest_id: Option<i64>,
    is_new: bool,
}

/// The group's incident, locked for this transaction, or a new one.
async fn find_or_open(
    config: &EngineConfig,
    tx: &mut Transaction<'_, Postgres>,
    group_key: &str,
    first: &Alert,
) -> anyhow::Result<Before> {
    let existing = sqlx::query(
        "SELECT id, status, severity, digest_id FROM incidents WHERE group_key = $1 FOR UPDATE",
    )
    .bind(group_key)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match existing {
        Some(r) => Before {
            id: r.get("id"),
            status: Status::parse(r.get("status")).unwrap_or(Status::Firing),
            severity: Severity::parse(r.get("severity")),
            digest_id: r.get("digest_id"),
            is_new: false,
        },
        None => {
            let (id, digest_id) = open_incident(config, tx, group_key, first).await?;
            Before {
                id,
                status: first.status,
                severity: first.severity,
                digest_id,
                is_new: true,
            }
        }
    })
}

/// Alert rows the batch inserted or changed.
struct Changed {
    rows: usize,
    added: usize,
}

/// Upserts the batch's alerts into the incident; the newest state per series wins.
async fn upsert_alerts(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    alerts: &[Alert],
) -> anyhow::Result<Changed> {
    let n = alerts.len();
    let mut fps = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut starts: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut ends: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    let mut annotations = Vec::with_capacity(n);
    let mut links = Vec::with_capacity(n);
    for a in alerts {
        fps.push(a.fingerprint.clone());
        statuses.push(a.status.as_str());
        starts.push(a.starts_at);
        ends.push(a.ends_at);
        labels.push(serde_json::to_value(&a.labels)?);
        annotations.push(serde_json::to_value(&a.annotations)?);
        links.push(serde_json::to_value(&a.links)?);
    }
    let changed = sqlx::query(
        "INSERT INTO incident_alerts (incident_id, fingerprint, status, starts_at, ends_at,
                                      labels, annotations, links)
         SELECT $1, f, s, sa, ea, l, an, li
         FROM UNNEST($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                     $6::jsonb[], $7::jsonb[], $8::jsonb[]) AS t(f, s, sa, ea, l, an, li)
         ON CONFLICT (incident_id, fingerprint) DO UPDATE SET
             status = EXCLUDED.status, starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
             labels = EXCLUDED.labels, annotations = EXCLUDED.annotations,
             links = EXCLUDED.links, updated_at = now()
         WHERE incident_alerts.starts_at < EXCLUDED.starts_at
            OR (incident_alerts.starts_at = EXCLUDED.starts_at
                AND incident_alerts.status = 'firing' AND EXCLUDED.status = 'resolved')
         RETURNING fingerprint, status, (xmax = 0) AS inserted",
    )
    .bind(id)
    .bind(&fps)
    .bind(&statuses)
    .bind(&starts)
    .bind(&ends)
    .bind(&labels)
    .bind(&annotations)
    .bind(&links)
    .fetch_all(&mut **tx)
    .await
    .context("Failed to update incident alerts")?;
    Ok(Changed {
        rows: changed.len(),
        added: changed
            .iter()
            .filter(|r| r.get::<bool, _>("inserted"))
            .count(),
    })
}

/// New status and severity; a new version for the sync loop (and the incident's digest).
async fn update_incident(
    tx: &mut Transaction<'_, Postgres>,
    before: &Before,
    status: Status,
    severity: Severity,
    reopened: bool,
    request_id: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE incidents SET status = $2, severity = $3, updated_at = now(),
             resolved_at = CASE WHEN $2 = 'resolved' THEN coalesce(resolved_at, now()) ELSE NULL END,
             reopened = reopened + $4, version = version + 1,
             request_id = coalesce($5, request_id)
         WHERE id = $1",
    )
    .bind(before.id)
    .bind(status.as_str())
    .bind(severity.as_str())
    .bind(i32::from(reopened))
    .bind(request_id)
    .execute(&mut **tx)
    .await?;
    if let Some(d) = before.digest_id {
        sqlx::query("UPDATE storm_digests SET version = version + 1 WHERE id = $1")
            .bind(d)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The incident's timeline: alerts added or changed, reopened, resolved.
async fn record_events(
    tx: &mut Transaction<'_, Postgres>,
    before: &Before,
    changed: &Changed,
    status: Status,
    reopened: bool,
) -> anyhow::Result<()> {
    let mut events = Vec::new();
    if changed.added > 0 && !before.is_new {
        events.push((
            "alerts_added",
            format!("{} new alert(s) joined", changed.added),
        ));
    }
    let updated = changed.rows - changed.added;
    if updated > 0 {
        events.push((
            "alerts_changed",
            format!("{updated} alert(s) changed state"),
        ));
    }
    if reopened {
        events.push(("reopened", "firing again after resolution".to_string()));
    } else if status != before.status && status == Status::Resolved {
        events.push(("resolved", "every alert resolved".to_string()));
    }
    for (kind, detail) in events {
        event(tx, before.id, kind, &detail).await?;
    }
    Ok(())
}

/// Creates the incident for a new group, deciding storm membership under the apply lock.
async fn open_incident(
    config: &EngineConfig,
    tx: &mut Transaction<'_, Postgres>,
    group_key: &str,
    first: &Alert,
) -> anyhow::Result<(i64, Option<i64>)> {
    let channel = match &first.origin {
        Some(o) => o.channel.clone(),
        None => config.routes.channel_for(&first.labels).to_string(),
    };
    let digest_id = storm_digest_for(tx, &channel, config.storm).await?;
    let (root_ts, ours) = match &first.origin {
        Some(o) => (Some(o.ts.clone()), false),
        None => (None, true),
    };
    let summary = first.summary().map(str::to_string);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO incidents (group_key, source, alertname, channel, status, severity, summary,
                                root_ts, root_is_ours, digest_id, opened_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, clock_timestamp())
         RETURNING id",
    )
    .bind(group_key)
    .bind(first.source.as_str())
    .bind(first.name())
    .bind(&channel)
    .bind(first.status.as_str())
    .bind(first.severity.as_str())
    .bind(summary)
    .bind(root_ts)
    .bind(ours)
    .bind(digest_id)
    .fetch_one(&mut **tx)
    .await
    .context("Failed to open an incident")?;
    let detail = match digest_id {
        Some(d) => format!("opened in {channel}, listed in storm digest {d}"),
        None => format!("opened in {channel}"),
    };
    event(tx, id, "opened", &detail).await?;
    Ok((id, digest_id))
}

/// The channel's current storm digest (a new one if needed) when more than the threshold
/// of incidents opened there within the window; `None` otherwise.
async fn storm_digest_for(
    tx: &mut Transaction<'_, Postgres>,
    channel: &str,
    storm: StormConfig,
) -> anyhow::Result<Option<i64>> {
    let window_s = storm.window.as_secs_f64();
    let recent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM incidents
         WHERE channel = $1 AND opened_at > clock_timestamp() - make_interval(secs => $2)",
    )
    .bind(channel)
    .bind(window_s)
    .fetch_one(&mut **tx)
    .await?;
    if recent < i64::from(storm.threshold) {
        return Ok(None);
    }
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM storm_digests
         WHERE channel = $1 AND last_added_at > clock_timestamp() - make_interval(secs => $2)
         ORDER BY last_added_at DESC LIMIT 1",
    )
    .bind(channel)
    .bind(window_s)
    .fetch_optional(&mut **tx)
    .await?;
    let id = match existing {
        Some(id) => id,
        None => {
            sqlx::query_scalar("INSERT INTO storm_digests (channel) VALUES ($1) RETURNING id")
                .bind(channel)
                .fetch_one(&mut **tx)
                .await?
        }
    };
    sqlx::query(
        "UPDATE storm_digests SET last_added_at = clock_timestamp(), version = version + 1
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(Some(id))
}

pub(crate) async fn event(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    kind: &str,
    detail: &str,
) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO incident_events (incident_id, kind, detail) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(kind)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn alert(fp: &str, status: Status, minute: u32) -> Alert {
        Alert {
            source: Source::Generic,
            fingerprint: fp.into(),
            status,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            severity: Severity::Warning,
            starts_at: Utc.with_ymd_and_hms(2026, 11, 20, 21, minute, 0).unwrap(),
            ends_at: None,
            links: vec![],
            group_key: "g".into(),
            origin: None,
            request_id: None,
        }
    }

    #[test]
    fn newest_state_wins_within_a_batch() {
        let out = newest_per_series(vec![
            alert("a", Status::Resolved, 1),
            alert("a", Status::Firing, 1),
            alert("b", Status::Firing, 2),
            alert("b", Status::Resolved, 1),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].status, Status::Resolved, "same start: resolved wins");
        assert_eq!(out[1].status, Status::Firing, "later start wins");
    }

    fn from_request(id: Option<&str>) -> Alert {
        Alert {
            request_id: id.map(str::to_string),
            ..alert("a", Status::Firing, 1)
        }
    }

    #[test]
    fn request_ids_are_distinct_in_arrival_order() {
        let alerts = [Some("r2"), None, Some("r1"), Some("r2")].map(from_request);
        assert_eq!(request_ids(&alerts).as_deref(), Some("r2,r1"));
        assert_eq!(request_ids(&[from_request(None)]), None);
    }

    #[test]
    fn request_ids_beyond_the_cap_are_counted() {
        let ids: Vec<String> = (0..11).map(|i| format!("r{i}")).collect();
        let alerts: Vec<Alert> = ids.iter().map(|i| from_request(Some(i))).collect();
        assert_eq!(
            request_ids(&alerts).as_deref(),
            Some("r0,r1,r2,r3,r4,r5,r6,r7,+3 more")
        );
    }
}
