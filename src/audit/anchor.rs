//! Publishing the chain head outside the database, where someone with write access to it
//! cannot follow: the log (always) and the audit channel (`SENTINEL_AUDIT_CHANNEL`), every
//! hour and after every action.
//!
//! Anchoring does not append a `head_anchored` row: that row would itself move the head
//! just published. A published head is checked with `sentinel audit verify --anchor SEQ:HASH`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;

use super::chain;
use super::store::{from_row, genesis, COLUMNS};
use super::{AuditKey, Head};
use crate::mrkdwn;
use crate::slack::message::Message;
use crate::slack::mrkdwn::Mrkdwn;
use crate::slack::SlackPort;

/// How often `serve` publishes the head when nothing else does.
pub const EVERY: Duration = Duration::from_secs(3600);

/// The Slack message that publishes `head`; `authentic` is whether its last row's hash
/// checked out under the key (`None`: no key to check with).
pub fn message(head: &Head, authentic: Option<bool>) -> Message {
    let mut text = mrkdwn!(
        "🔒 Audit log head: seq *{}* · hash {}",
        head.seq,
        Mrkdwn::code(&head.hash)
    );
    if authentic == Some(false) {
        text.push(&mrkdwn!(
            "\n:warning: the last row does not verify under the audit key: run `sentinel audit verify`"
        ));
    }
    Message::text_only(&text)
}

/// The head, and whether its last row's hash is the keyed hash of its contents and
/// `prev_hash` (one row, not the chain: `verify` does that).
pub async fn checked_head(
    pool: &PgPool,
    key: Option<&AuditKey>,
) -> anyhow::Result<(Head, Option<bool>)> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT 1"
    ))
    .fetch_optional(pool)
    .await
    .context("Failed to read the audit head")?;
    let Some(row) = row else {
        return Ok((genesis(), key.map(|_| true)));
    };
    let row = from_row(&row)?;
    let authentic = key.map(|k| {
        chain::decode_hash(&row.prev_hash)
            .is_some_and(|prev| hex::encode(chain::expected_hash(k, &prev, &row)) == row.hash)
    });
    Ok((
        Head {
            seq: row.seq,
            hash: row.hash,
        },
        authentic,
    ))
}

/// Publishes the current head now: logs it, and posts it to `slack`'s channel when given.
/// Call after every action (a failed post is returned; the head is logged anyway).
pub async fn now(
    pool: &PgPool,
    key: Option<&AuditKey>,
    slack: Option<(&dyn SlackPort, &str)>,
) -> anyhow::Result<Head> {
    let (head, authentic) = checked_head(pool, key).await?;
    if authentic == Some(false) {
        tracing::error!(audit.head_seq = head.seq, audit.head_hash = %head.hash, "audit head does not verify under the audit key");
    }
    tracing::info!(audit.head_seq = head.seq, audit.head_hash = %head.hash, "audit head");
    if let Some((port, channel)) = slack {
        port.post(channel, &message(&head, authentic))
            .await
            .with_context(|| format!("Failed to post the audit head to {channel}"))?;
    }
    Ok(head)
}

/// The periodic anchor: publishes the head at once, then every `every`, until the task is
/// dropped. Failures are logged and retried at the next tick.
pub async fn run(
    pool: PgPool,
    key: Option<AuditKey>,
    slack: Option<(Arc<dyn SlackPort>, String)>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let target = slack.as_ref().map(|(p, c)| (p.as_ref(), c.as_str()));
        if let Err(e) = now(&pool, key.as_ref(), target).await {
            tracing::warn!(error = %format!("{e:#}"), "anchoring the audit head failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_shows_seq_and_whole_hash() {
        let head = Head {
            seq: 1234,
            hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        };
        let m = message(&head, Some(true));
        assert!(m.text().contains("seq *1234*"), "{}", m.text());
        assert!(
            m.text().contains(&format!("`{}`", head.hash)),
            "{}",
            m.text()
        );
        assert!(!m.text().contains("warning"));
        assert!(message(&head, Some(false))
            .text()
            .contains("does not verify"));
    }
}
