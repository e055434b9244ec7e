//! The real Slack client behind the incident engine's and the diagnosis pipeline's traits:
//! `IncidentNotifier` (roots, edits, replies, reactions) and `DiagnosisSink`.

use async_trait::async_trait;
use serde_json::Value;

use super::{SlackClient, SlackError};
use crate::alerts::notify::{IncidentNotifier, Message, NotifyError};
use crate::diagnosis::{DiagnosisSink, MessageRef, SlackMessage, ThreadRef};

/// Slack errors as the engine's retry policy sees them: 429 waits, 5xx and transport
/// trouble retry, anything Slack refused outright (`channel_not_found`, ...) is final.
pub fn notify_error(e: SlackError) -> NotifyError {
    match e {
        SlackError::RateLimited { retry_after, .. } => NotifyError::RateLimited(retry_after),
        SlackError::Server { .. } | SlackError::Timeout { .. } | SlackError::Transport { .. } => {
            NotifyError::Transient(e.to_string())
        }
        SlackError::Api { .. } => NotifyError::Fatal(e.to_string()),
    }
}

/// Block Kit blocks as the client takes them (`None` for "no blocks").
fn blocks_of(v: Option<&Value>) -> Option<Vec<Value>> {
    v.and_then(Value::as_array)
        .filter(|b| !b.is_empty())
        .cloned()
}

#[async_trait]
impl IncidentNotifier for SlackClient {
    async fn post_root(&self, channel: &str, msg: &Message) -> Result<String, NotifyError> {
        self.post_message(channel, None, &msg.text, blocks_of(msg.blocks.as_ref()))
            .await
            .map(|p| p.ts)
            .map_err(notify_error)
    }

    async fn update_root(&self, channel: &str, ts: &str, msg: &Message) -> Result<(), NotifyError> {
        self.update_message(channel, ts, &msg.text, blocks_of(msg.blocks.as_ref()))
            .await
            .map_err(notify_error)
    }

    async fn reply(
        &self,
        channel: &str,
        thread_ts: &str,
        msg: &Message,
    ) -> Result<String, NotifyError> {
        self.post_message(
            channel,
            Some(thread_ts),
            &msg.text,
            blocks_of(msg.blocks.as_ref()),
        )
        .await
        .map(|p| p.ts)
        .map_err(notify_error)
    }

    async fn react(&self, channel: &str, ts: &str, emoji: &str) -> Result<(), NotifyError> {
        self.add_reaction(channel, ts, emoji)
            .await
            .map_err(notify_error)
    }
}

#[async_trait]
impl DiagnosisSink for SlackClient {
    async fn post_placeholder(
        &self,
        thread: &ThreadRef,
        msg: &SlackMessage,
    ) -> anyhow::Result<MessageRef> {
        let p = self
            .post_message(
                &thread.channel,
                thread.thread_ts.as_deref(),
                &msg.text,
                blocks_of(Some(&msg.blocks)),
            )
            .await?;
        Ok(MessageRef {
            channel: p.channel,
            ts: p.ts,
        })
    }

    async fn update(&self, msg: &MessageRef, text: &str, blocks: &Value) -> anyhow::Result<()> {
        self.update_message(&msg.channel, &msg.ts, text, blocks_of(Some(blocks)))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn errors_map_to_the_engine_retry_policy() {
        let m = || "chat.postMessage".to_string();
        assert_eq!(
            notify_error(SlackError::RateLimited {
                method: m(),
                retry_after: Duration::from_secs(3)
            }),
            NotifyError::RateLimited(Duration::from_secs(3))
        );
        assert!(matches!(
            notify_error(SlackError::Server {
                method: m(),
                status: 503
            }),
            NotifyError::Transient(_)
        ));
        assert!(matches!(
            notify_error(SlackError::Api {
                method: m(),
                error: "channel_not_found".into()
            }),
            NotifyError::Fatal(e) if e.contains("channel_not_found")
        ));
    }

    #[test]
    fn empty_blocks_are_no_blocks() {
        assert_eq!(blocks_of(Some(&serde_json::json!([]))), None);
        assert_eq!(blocks_of(None), None);
        assert_eq!(
            blocks_of(Some(&serde_json::json!([{"type": "divider"}]))).map(|b| b.len()),
            Some(1)
        );
    }
}
