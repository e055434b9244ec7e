//! `/sentinel incidents` and `/sentinel incident ID` (parsed in `bot::command`): the
//! answers read Postgres and return a Slack message the bot sends back.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

use super::render::{alert_line, title};
use super::view::{load_row, thread_link};
use crate::alerts::model::Status;
use crate::error::UserError;
use crate::mrkdwn;
use crate::slack::blocks::{context, section};
use crate::slack::{Message, Mrkdwn};

/// Open incidents listed by `/sentinel incidents`.
pub const LIST_LIMIT: i64 = 25;

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
        return Ok(Message::text_only(&Mrkdwn::own("✅ No open incidents.")));
    }
    let more = rows.len() as i64 > LIST_LIMIT;
    let mut lines = Vec::new();
    for r in rows.iter().take(LIST_LIMIT as usize) {
        let channel: String = r.get("channel");
        let ts: Option<String> = r.get::<Option<String>, _>("root_ts").or(r.get("digest_ts"));
        let link = ts
            .map(|ts| {
                mrkdwn!(
                    " · {}",
                    Mrkdwn::own_link(&thread_link(&channel, &ts), &Mrkdwn::own("thread"))
                )
            })
            .unwrap_or_default();
        lines.push(mrkdwn!(
            "🔥 *#{}* {} · {} · {} firing · opened {}{}",
            r.get::<i64, _>("id"),
            Mrkdwn::untrusted(r.get("alertname")),
            Mrkdwn::untrusted(r.get("severity")),
            r.get::<i64, _>("firing"),
            Mrkdwn::own(ago(r.get("opened_at"), now)),
            link
        ));
    }
    let head = Mrkdwn::own(format!(
        "*Open incidents* (newest first{})",
        if more { ", first 25" } else { "" }
    ));
    let body = Mrkdwn::join(lines, "\n");
    let blocks = vec![
        section(&head),
        section(&body),
        context(&[Mrkdwn::own("`/sentinel incident ID` shows one incident.")]),
    ];
    Ok(Message::new(&mrkdwn!("{}\n{}", head, body), blocks))
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
    let timeline = events.iter().map(|e| {
        mrkdwn!(
            "{} {} — {}",
            Mrkdwn::code(
                &e.get::<DateTime<Utc>, _>("at")
                    .format("%m-%d %H:%M:%S")
                    .to_string()
            ),
            Mrkdwn::untrusted(e.get("kind")),
            Mrkdwn::untrusted(e.get("detail"))
        )
    });
    let alerts = view.alerts.iter().take(20).map(alert_line);
    let thread = match &row.root_ts {
        Some(ts) => Mrkdwn::own_link(
            &thread_link(&row.channel, ts),
            &Mrkdwn::own("Open the thread"),
        ),
        None if row.digest_id.is_some() => {
            Mrkdwn::own("Listed in a storm digest (no thread of its own).")
        }
        None => Mrkdwn::own("No Slack thread yet."),
    };
    let head = Mrkdwn::bold(&title(&view));
    let firing = view
        .alerts
        .iter()
        .filter(|a| a.status == Status::Firing)
        .count();
    let alerts_text = mrkdwn!(
        "*Alerts* ({} firing of {})\n{}",
        firing,
        view.alerts.len(),
        Mrkdwn::join(alerts, "\n")
    );
    let timeline_text = mrkdwn!("*Timeline*\n{}", Mrkdwn::join(timeline, "\n"));
    let parts = [head, alerts_text, timeline_text, thread];
    let blocks = parts.iter().map(section).collect();
    Ok(Ok(Message::new(&Mrkdwn::join(parts, "\n"), blocks)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        let now = Utc::now();
        assert_eq!(ago(now - chrono::Duration::minutes(5), now), "5 min ago");
        assert_eq!(ago(now - chrono::Duration::hours(3), now), "3 h ago");
        assert_eq!(ago(now - chrono::Duration::days(4), now), "4 days ago");
    }
}
