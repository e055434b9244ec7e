//! Offering a diagnosis's actions in its incident thread: the LLM's proposals (validated
//! against the catalog), or, for the runbook-based diagnosis, every action the best
//! runbook declares. An action whose parameters cannot be resolved is named, not offered.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;

use super::commands::catalog;
use super::flow::{ProposeRequest, Proposed};
use super::render;
use super::Actions;
use crate::diagnosis::Draft;
use crate::mrkdwn;
use crate::slack::{Mrkdwn, SlackPort};

/// Where the thread is and what the alert says.
pub struct Thread<'a> {
    pub incident_id: i64,
    pub channel: &'a str,
    pub root_ts: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

impl Actions {
    /// Proposes the actions `draft` names in the incident's thread (once per incident and
    /// action: a diagnosis redone after a crash offers nothing twice).
    pub async fn offer(
        self: &Arc<Self>,
        port: Arc<dyn SlackPort>,
        t: &Thread<'_>,
        draft: &Draft,
    ) -> anyhow::Result<()> {
        let wanted: Vec<(String, String, BTreeMap<String, String>)> = match draft {
            Draft::Llm(d) => d
                .actions
                .iter()
                .map(|a| {
                    (
                        a.runbook_path.clone(),
                        a.action_id.clone(),
                        a.params.clone(),
                    )
                })
                .collect(),
            Draft::Fallback(f) => match &f.runbook {
                Some(rb) => f
                    .actions
                    .iter()
                    .map(|(id, _)| (rb.runbook_path.clone(), id.clone(), BTreeMap::new()))
                    .collect(),
                None => Vec::new(),
            },
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let all = catalog(&self.pool).await?;
        let mut not_offered = Vec::new();
        for (path, id, given) in wanted {
            let Some((_, action)) = all.iter().find(|(p, a)| *p == path && a.id == id) else {
                continue;
            };
            let offered_before: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM action_proposals
                                WHERE incident_id = $1 AND action_id = $2 AND requested_by IS NULL)",
            )
            .bind(t.incident_id)
            .bind(&id)
            .fetch_one(&self.pool)
            .await
            .context("Failed to look for earlier proposals")?;
            if offered_before {
                continue;
            }
            let req = ProposeRequest {
                incident_id: Some(t.incident_id),
                channel: t.channel.to_string(),
                thread_ts: Some(t.root_ts.to_string()),
                runbook_path: path,
                action: action.clone(),
                labels: t.labels.clone(),
                given,
                requested_by: None,
            };
            if let Proposed::NotOffered(why) = self.propose(port.clone(), req).await? {
                not_offered.push(mrkdwn!(
                    "• {}: {}",
                    Mrkdwn::untrusted(&action.title),
                    Mrkdwn::untrusted(&why.to_string())
                ));
            }
        }
        if !not_offered.is_empty() {
            let lines = not_offered
                .iter()
                .map(Mrkdwn::as_str)
                .collect::<Vec<_>>()
                .join("\n");
            let text = mrkdwn!(
                "Not offered (a parameter has no valid value):\n{}",
                Mrkdwn::own(lines)
            );
            port.reply(t.channel, t.root_ts, &render::note(text))
                .await
                .map_err(|e| anyhow::anyhow!("Failed to post the actions not offered: {e}"))?;
        }
        Ok(())
    }
}
