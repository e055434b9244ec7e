//! The one outbound port for Slack posts: the calls the incident engine makes (post, edit,
//! reply, react), implemented by the real [`SlackClient`] and by the fakes in
//! [`recorder`](super::recorder).

use std::time::Duration;

use async_trait::async_trait;

use super::message::{Marker, Message};
use super::{SlackClient, SlackError};
use crate::retry::Verdict;

/// Why a post failed, as the retry policy sees it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PortError {
    /// Slack said 429; try again after this long.
    #[error("rate limited by Slack (retry after {0:?})")]
    RateLimited(Duration),
    /// Worth retrying (network, 5xx).
    #[error("Slack call failed: {0}")]
    Transient(String),
    /// Retrying will not help (`channel_not_found`, `not_in_channel`, `invalid_blocks`).
    #[error("Slack refused the call: {0}")]
    Fatal(String),
}

impl From<SlackError> for PortError {
    /// 429 waits, 5xx and transport trouble retry, anything Slack refused outright is final.
    fn from(e: SlackError) -> Self {
        match e {
            SlackError::RateLimited { retry_after, .. } => PortError::RateLimited(retry_after),
            SlackError::Server { .. }
            | SlackError::Timeout { .. }
            | SlackError::Transport { .. } => PortError::Transient(e.to_string()),
            SlackError::Api { .. } => PortError::Fatal(e.to_string()),
        }
    }
}

impl PortError {
    /// How the one retry policy (`retry::Backoff`) treats this error.
    pub fn verdict(&self) -> Verdict {
        match self {
            PortError::RateLimited(d) => Verdict::RetryAfter(*d),
            PortError::Transient(_) => Verdict::Retry,
            PortError::Fatal(_) => Verdict::Fatal,
        }
    }
}

/// What Sentinel's background work needs from Slack. The caller retries `RateLimited`
/// and `Transient` (`PortError::verdict`), so no post is dropped for them.
#[async_trait]
pub trait SlackPort: Send + Sync {
    /// `chat.postMessage` in a channel; returns the message `ts`.
    async fn post(&self, channel: &str, msg: &Message) -> Result<String, PortError>;
    /// `chat.update` of a message Sentinel posted.
    async fn update(&self, channel: &str, ts: &str, msg: &Message) -> Result<(), PortError>;
    /// `chat.postMessage` with `thread_ts`; returns the reply's `ts`.
    async fn reply(
        &self,
        channel: &str,
        thread_ts: &str,
        msg: &Message,
    ) -> Result<String, PortError>;
    /// `reactions.add` (`already_reacted` counts as success).
    async fn react(&self, channel: &str, ts: &str, emoji: &str) -> Result<(), PortError>;
    /// The `ts` of a message Sentinel posted with `marker`, in `thread_ts`'s thread or
    /// among the channel's messages newer than `oldest` (see `SlackClient::find_marked`).
    async fn find_marked(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        oldest: &str,
        marker: &Marker,
    ) -> Result<Option<String>, PortError>;
}

#[async_trait]
impl SlackPort for SlackClient {
    async fn post(&self, channel: &str, msg: &Message) -> Result<String, PortError> {
        Ok(self.post_message(channel, None, msg).await?.ts)
    }

    async fn update(&self, channel: &str, ts: &str, msg: &Message) -> Result<(), PortError> {
        Ok(self.update_message(channel, ts, msg).await?)
    }

    async fn reply(
        &self,
        channel: &str,
        thread_ts: &str,
        msg: &Message,
    ) -> Result<String, PortError> {
        Ok(self.post_message(channel, Some(thread_ts), msg).await?.ts)
    }

    async fn react(&self, channel: &str, ts: &str, emoji: &str) -> Result<(), PortError> {
        Ok(self.add_reaction(channel, ts, emoji).await?)
    }

    async fn find_marked(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        oldest: &str,
        marker: &Marker,
    ) -> Result<Option<String>, PortError> {
        Ok(SlackClient::find_marked(self, channel, thread_ts, oldest, marker).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_errors_map_to_the_retry_policy() {
        let m = || "chat.postMessage".to_string();
        assert_eq!(
            PortError::from(SlackError::RateLimited {
                method: m(),
                retry_after: Duration::from_secs(3)
            }),
            PortError::RateLimited(Duration::from_secs(3))
        );
        assert!(matches!(
            PortError::from(SlackError::Server {
                method: m(),
                status: 503
            }),
            PortError::Transient(_)
        ));
        assert!(matches!(
            PortError::from(SlackError::Api {
                method: m(),
                error: "channel_not_found".into()
            }),
            PortError::Fatal(e) if e.contains("channel_not_found")
        ));
    }
}
