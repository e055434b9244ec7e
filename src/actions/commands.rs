//! `/sentinel run`, `/sentinel actions [pause|resume]` and `/sentinel audit`: what they
//! change and the private answers they give.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::json;

use super::flow::{ClickError, ProposeRequest, Proposed};
use super::{store, Actions};
use crate::audit::{self, Actor, Event, Kind};
use crate::knowledge::actions::Action;
use crate::mrkdwn;
use crate::slack::{Message, Mrkdwn, SlackPort};

fn user(s: impl Into<String>) -> ClickError {
    ClickError::User(s.into())
}

/// The catalog: every action every runbook declares, `(runbook path, action)`.
pub async fn catalog(pool: &sqlx::PgPool) -> anyhow::Result<Vec<(String, Action)>> {
    let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT path, actions FROM runbooks WHERE jsonb_array_length(actions) > 0 ORDER BY path",
    )
    .fetch_all(pool)
    .await
    .context("Failed to read the action catalog")?;
    let mut out = Vec::new();
    for (path, actions) in rows {
        match serde_json::from_value::<Vec<Action>>(actions) {
            Ok(list) => out.extend(list.into_iter().map(|a| (path.clone(), a))),
            Err(e) => {
                tracing::warn!(runbook = %path, error = %e, "runbook actions are not a valid catalog")
            }
        }
    }
    Ok(out)
}

/// Where an incident's thread is and what its alert's labels are.
async fn incident_target(
    pool: &sqlx::PgPool,
    id: i64,
) -> anyhow::Result<Option<(String, Option<String>, BTreeMap<String, String>)>> {
    let row: Option<(String, Option<String>, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT i.channel, i.root_ts,
                (SELECT ia.labels FROM incident_alerts ia
                 WHERE ia.incident_id = i.id ORDER BY ia.updated_at DESC LIMIT 1)
         FROM incidents i WHERE i.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("Failed to read the incident")?;
    Ok(row.map(|(channel, root, labels)| {
        let labels = labels
            .and_then(|l| serde_json::from_value(l).ok())
            .unwrap_or_default();
        (channel, root, labels)
    }))
}

impl Actions {
    /// `/sentinel run ACTION_ID [key=value ...] [#INCIDENT]` by `requester` in `channel`.
    pub async fn run_command(
        self: &Arc<Self>,
        port: Arc<dyn SlackPort>,
        requester: &str,
        channel: &str,
        action_id: &str,
        given: BTreeMap<String, String>,
        incident: Option<i64>,
    ) -> Result<Message, ClickError> {
        let matches: Vec<(String, Action)> = catalog(&self.pool)
            .await?
            .into_iter()
            .filter(|(_, a)| a.id == action_id)
            .collect();
        let (path, action) = match matches.as_slice() {
            [] => {
                return Err(user(format!(
                    "No runbook declares an action `{}`; `/sentinel actions` lists the catalog.",
                    crate::text::truncate_chars(action_id, 63)
                )))
            }
            [one] => one.clone(),
            many => {
                let paths: Vec<&str> = many.iter().map(|(p, _)| p.as_str()).collect();
                return Err(user(format!(
                    "Several runbooks declare `{action_id}` ({}); rename one of them.",
                    paths.join(", ")
                )));
            }
        };
        let (channel, thread, labels) = match incident {
            Some(id) => match incident_target(&self.pool, id).await? {
                Some(t) => t,
                None => {
                    return Err(user(format!(
                        "There is no incident #{id}; `/sentinel incidents` lists them."
                    )))
                }
            },
            None => (channel.to_string(), None, BTreeMap::new()),
        };
        let req = ProposeRequest {
            incident_id: incident,
            channel,
            thread_ts: thread,
            runbook_path: path,
            action,
            labels,
            given,
            requested_by: Some(requester.to_string()),
        };
        match self.propose(port, req).await? {
            Proposed::Offered(p) => Ok(Message::text_only(&mrkdwn!(
                "Proposed “{}” as #{}: it runs once an approver clicks Approve (you cannot approve your own request).",
                Mrkdwn::untrusted(&p.title),
                p.id
            ))),
            Proposed::NotOffered(why) => Err(user(format!(
                "`{action_id}` cannot be proposed: {}. Nothing was proposed.",
                why
            ))),
        }
    }

    /// `/sentinel actions`: the catalog and the switches.
    pub async fn list_command(&self) -> Result<Message, ClickError> {
        let mut conn = self.pool.acquire().await.context("Failed to connect")?;
        let paused = store::paused(&mut conn, "global").await?;
        let mut lines = vec![mrkdwn!(
            "*Action catalog* · mode {} · {}",
            Mrkdwn::code(self.cfg.mode.name()),
            Mrkdwn::own(if paused {
                "⏸ *paused* (admins: `/sentinel actions resume`)"
            } else {
                "not paused"
            })
        )];
        for (path, a) in catalog(&self.pool).await? {
            let risk = match a.risk {
                crate::knowledge::actions::Risk::Low => "low",
                crate::knowledge::actions::Risk::Medium => "medium",
                crate::knowledge::actions::Risk::High => "high",
            };
            let mut line = mrkdwn!(
                "• {} {} · risk {} · {}",
                Mrkdwn::code(&a.id),
                Mrkdwn::untrusted(&a.title),
                Mrkdwn::own(risk),
                Mrkdwn::code(&path)
            );
            if a.auto_approve {
                let off = store::paused(&mut conn, &format!("auto:{}", a.id)).await?;
                line = mrkdwn!(
                    "{} · auto-approve {}",
                    line,
                    Mrkdwn::own(if off { "switched off" } else { "on" })
                );
            }
            lines.push(line);
        }
        if lines.len() == 1 {
            lines.push(Mrkdwn::own("No runbook declares actions."));
        }
        Ok(lines_message(&lines))
    }

    /// `/sentinel actions pause|resume [ACTION_ID]` by an admin; `pause` is the kill switch.
    pub async fn switch_command(
        &self,
        by: &str,
        pause: bool,
        action_id: Option<&str>,
    ) -> Result<Message, ClickError> {
        if !self.cfg.admins.iter().any(|a| a == by) {
            return Err(user(
                "Only the people in SENTINEL_ACTION_ADMINS can pause or resume actions.",
            ));
        }
        let name = match action_id {
            Some(id) => format!("auto:{id}"),
            None => "global".to_string(),
        };
        let mut tx = self.pool.begin().await.context("Failed to begin")?;
        let changed = store::set_switch(&mut tx, &name, pause, by, "by hand").await?;
        if changed {
            let actor = match &self.dir {
                Some(d) => d.user_name(by).await.ok().flatten(),
                None => None,
            };
            let e = Event {
                actor: Actor::User {
                    id: by.into(),
                    name: actor.unwrap_or_else(|| by.into()),
                },
                kind: if pause { Kind::Paused } else { Kind::Resumed },
                incident_id: None,
                proposal_id: None,
                action: action_id.map(str::to_string),
                argv: None,
                outcome: Some(name.clone()),
                detail: json!({}),
            };
            audit::append(&mut tx, &self.audit_key, e)
                .await
                .context("Failed to write the audit row")?;
        }
        tx.commit().await.context("Failed to commit the switch")?;
        let what = match (action_id, pause) {
            (None, true) => {
                "⏸ All actions are paused: no click runs anything until `/sentinel actions resume`."
                    .to_string()
            }
            (None, false) => "▶️ Actions are resumed.".to_string(),
            (Some(id), true) => format!("Auto-approval of `{id}` is off."),
            (Some(id), false) => format!("Auto-approval of `{id}` is on again."),
        };
        let what = if changed {
            what
        } else {
            format!("{what} (it already was)")
        };
        Ok(Message::text_only(&Mrkdwn::own(what)))
    }
}

/// `/sentinel audit [#INCIDENT]`: the latest events.
pub async fn audit_command(pool: &sqlx::PgPool, incident: Option<i64>) -> anyhow::Result<Message> {
    let events = audit::recent(pool, incident, 15).await?;
    let mut lines = vec![match incident {
        Some(i) => mrkdwn!("*Audit log of incident #{}* (newest first)", i),
        None => Mrkdwn::own("*Audit log* (newest first)"),
    }];
    for e in events.iter().rev() {
        lines.push(mrkdwn!(
            "• #{} {} {} by {}{}{}",
            e.seq,
            Mrkdwn::own(e.at.format("%Y-%m-%d %H:%M:%S").to_string()),
            Mrkdwn::code(&e.kind),
            Mrkdwn::untrusted(e.actor.parts().1),
            Mrkdwn::own(
                e.action
                    .as_deref()
                    .map(|a| format!(" · `{}`", Mrkdwn::untrusted(a)))
                    .unwrap_or_default()
            ),
            Mrkdwn::own(
                e.outcome
                    .as_deref()
                    .map(|o| format!(
                        " · {}",
                        Mrkdwn::untrusted(&crate::text::truncate_chars(o, 80))
                    ))
                    .unwrap_or_default()
            )
        ));
    }
    if events.is_empty() {
        lines.push(Mrkdwn::own("No events yet."));
    }
    Ok(lines_message(&lines))
}

/// A private answer of one line per item, within Slack's text limit.
fn lines_message(lines: &[Mrkdwn]) -> Message {
    let text = lines
        .iter()
        .map(Mrkdwn::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    Message::text_only(&Mrkdwn::own(crate::text::truncate_chars(&text, 3500)))
}
