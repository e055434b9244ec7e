//! `/sentinel incidents` and `/sentinel incident ID`: parsing is pure, answers read Postgres
//! and return a Slack message (text + blocks) the bot sends back.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};

use super::view::{load_row, thread_link};
use crate::alerts::model::Status;
use crate::alerts::notify::Message;
use crate::alerts::render::{alert_line, escape, title};
use crate::error::UserError;
use crate::text::truncate_chars;

/// Open incidents listed by `/sentinel incidents`.
pub const LIST_LIMIT: i64 = 25;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentCommand {
    List,
    Show(i64),
}

/// Parses the text after `/sentinel` (`incidents`, `incident 12`, `incident #12`).
/// `Ok(None)` means "not an incident command" so the router can try others.
pub fn parse(text: &str) -> Result<Option<IncidentCommand>, UserError> {
    let mut words = text.split_whitespace();
    match words.next().map(str::to_ascii_lowercase).as_deref() {
        Some("incidents") => Ok(Some(IncidentCommand::List)),
        Some("incident") => {
            let Some(arg) = words.next() else {
                return Err(UserError::new(
                    "Which incident? Use `/sentinel incident ID`, e.g. `/sentinel incident 12`.",
                ));
            };
            arg.trim_start_matches('#')
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| Some(IncidentCommand::Show(n)))
                .ok_or_else(|| {
                    UserError::new(format!(
                        "`{}` is not an incident number; try `/sentinel incidents` to list them.",
                        truncate_chars(arg, 40)
                    ))
                })
        }
        _ => Ok(None),
    }
}

fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let m = (now - t).num_minutes().max(0);
    if m < 60 {
        format!("{m} min ago")
    } else if m < 48 * 60 {
        format!("{} h ago", m / 60)
    } else {
        format!("{} days ago", m / 1440)
    }
}

/// `/sentinel incidents`: open incidents, newest first.
pub async fn list(pool: &PgPool, now: DateTime<Utc>) -> anyhow::Result<Message> {
    let rows = sqlx::query(
        "SELECT i.id, i.alertname, i.severity, i.channel, i.root_ts, i.opened_at, i.digest_id,
                (SELECT count(*) FROM incident_alerts a
                  WHERE a.incident_id = i.id AND a.status = 'firing') AS firing,
                (SELECT root_ts FROM storm_digests d WHERE d.id = i.digest_id) AS digest_ts
         FROM incidents i WHERE i.status = 'firing'
         ORDER BY i.opened_at DESC, i.id DESC LIMIT $1",
    )
    .bind(LIST_LIMIT + 1)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(Message::text("✅ No open incidents."));
    }
    let more = rows.len() as i64 > LIST_LIMIT;
    let mut lines = Vec::new();
    for r in rows.iter().take(LIST_LIMIT as usize) {
        let channel: String = r.get("channel");
        let ts: Option<String> = r.get::<Option<String>, _>("root_ts").or(r.get("digest_ts"));
        let link = ts
            .map(|ts| format!(" · <{}|thread>", thread_link(&channel, &ts)))
            .unwrap_or_default();
        lines.push(format!(
            "🔥 *#{}* {} · {} · {} firing · opened {}{link}",
            r.get::<i64, _>("id"),
            escape(r.get("alertname")),
            r.get::<String, _>("severity"),
            r.get::<i64, _>("firing"),
            ago(r.get("opened_at"), now),
        ));
    }
    let head = format!(
        "*Open incidents* (newest first{})",
        if more { ", first 25" } else { "" }
    );
    let body = lines.join("\n");
    Ok(Message {
        text: format!("{head}\n{body}"),
        blocks: Some(json!([
            {"type": "section", "text": {"type": "mrkdwn", "text": head}},
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate_chars(&body, 2900)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "`/sentinel incident ID` shows one incident."}]}
        ])),
    })
}

/// `/sentinel incident ID`: its alerts, timeline and thread link.
pub async fn show(pool: &PgPool, id: i64) -> anyhow::Result<Result<Message, UserError>> {
    let Some((row, view)) = load_row(pool, id).await? else {
        return Ok(Err(UserError::new(format!(
            "There is no incident #{id}; `/sentinel incidents` lists the open ones."
        ))));
    };
    let events = sqlx::query(
        "SELECT at, kind, detail FROM incident_events WHERE incident_id = $1 ORDER BY at, id LIMIT 30",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let timeline: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "`{}` {} — {}",
                e.get::<DateTime<Utc>, _>("at").format("%m-%d %H:%M:%S"),
                e.get::<String, _>("kind"),
                escape(e.get("detail"))
            )
        })
        .collect();
    let alerts: Vec<String> = view.alerts.iter().take(20).map(alert_line).collect();
    let thread = match &row.root_ts {
        Some(ts) => format!("<{}|Open the thread>", thread_link(&row.channel, ts)),
        None if row.digest_id.is_some() => {
            "Listed in a storm digest (no thread of its own).".into()
        }
        None => "No Slack thread yet.".into(),
    };
    let head = format!("*{}*", escape(&title(&view)));
    let firing = view
        .alerts
        .iter()
        .filter(|a| a.status == Status::Firing)
        .count();
    let alerts_text = format!(
        "*Alerts* ({firing} firing of {})\n{}",
        view.alerts.len(),
        alerts.join("\n")
    );
    let timeline_text = format!("*Timeline*\n{}", timeline.join("\n"));
    let blocks: Vec<Value> = [&head, &alerts_text, &timeline_text, &thread]
        .iter()
        .map(|t| json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate_chars(t, 2900)}}))
        .collect();
    Ok(Ok(Message {
        text: format!("{head}\n{alerts_text}\n{timeline_text}\n{thread}"),
        blocks: Some(Value::Array(blocks)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("incidents").unwrap(), Some(IncidentCommand::List));
        assert_eq!(
            parse("  Incident #12 ").unwrap(),
            Some(IncidentCommand::Show(12))
        );
        assert_eq!(parse("incident 7").unwrap(), Some(IncidentCommand::Show(7)));
        assert_eq!(parse("search disk full").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
        assert!(parse("incident").unwrap_err().0.contains("Which incident?"));
        assert!(parse("incident abc")
            .unwrap_err()
            .0
            .contains("`abc` is not an incident number"));
        assert!(parse("incident -3").is_err());
    }

    #[test]
    fn ages_read_naturally() {
        let now = Utc::now();
        assert_eq!(ago(now - chrono::Duration::minutes(5), now), "5 min ago");
        assert_eq!(ago(now - chrono::Duration::hours(3), now), "3 h ago");
        assert_eq!(ago(now - chrono::Duration::days(4), now), "4 days ago");
    }
}
