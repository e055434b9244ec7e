//! `sentinel audit export`: the log as JSON lines, one row each in `seq` order, streamed in
//! batches. Each line carries `prev_hash` and `hash`, so an exported full log can be
//! re-verified elsewhere with the key (docs/audit.md).

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::store::batch_after;

const BATCH: i64 = 5_000;

/// Which rows to export.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Rows appended at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Rows of this incident only.
    pub incident_id: Option<i64>,
}

/// Writes the matching rows to `out`, one JSON object a line; returns how many.
pub async fn export(pool: &PgPool, filter: &Filter, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut after = 0;
    let mut n = 0;
    loop {
        let batch = batch_after(pool, after, BATCH, filter.since, filter.incident_id).await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        for row in &batch {
            serde_json::to_writer(&mut *out, &row.to_json())?;
            out.write_all(b"\n").context("Failed to write the export")?;
            n += 1;
        }
    }
    out.flush().context("Failed to write the export")?;
    Ok(n)
}

/// Parses `--since`: RFC 3339 (`2026-11-30T00:00:00Z`) or a date (`2026-11-30`, midnight UTC).
pub fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!(
                "`{s}` is not a time: use RFC 3339 (2026-11-30T08:00:00Z) or a date (2026-11-30)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_rfc3339_and_dates() {
        assert_eq!(
            parse_since("2026-11-30T01:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-30T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-11-30").unwrap().to_rfc3339(),
            "2026-11-30T00:00:00+00:00"
        );
        assert!(parse_since("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
