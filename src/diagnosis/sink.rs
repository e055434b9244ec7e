//! Where diagnosis messages go: a small posting/editing trait the Slack client implements,
//! and a recording implementation for tests and benchmarks.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use super::SlackMessage;

/// The thread a diagnosis belongs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRef {
    pub channel: String,
    /// The incident's root message; `None` posts at the channel's top level.
    pub thread_ts: Option<String>,
}

/// A posted message that can be edited in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub channel: String,
    pub ts: String,
}

#[async_trait]
pub trait DiagnosisSink: Send + Sync {
    /// Posts the "Investigating…" message in the thread.
    async fn post_placeholder(
        &self,
        thread: &ThreadRef,
        msg: &SlackMessage,
    ) -> anyhow::Result<MessageRef>;
    /// Replaces a posted message's text and blocks (`chat.update`).
    async fn update(&self, msg: &MessageRef, text: &str, blocks: &Value) -> anyhow::Result<()>;
}

/// One thing done to a recording sink.
#[derive(Debug, Clone)]
pub enum SinkEvent {
    Posted {
        thread: ThreadRef,
        at: MessageRef,
        message: SlackMessage,
    },
    Updated {
        at: MessageRef,
        message: SlackMessage,
    },
}

/// Keeps every post and edit; messages get `ts` values `1.000001`, `1.000002`, ...
#[derive(Default)]
pub struct RecordingSink {
    events: Mutex<Vec<SinkEvent>>,
}

impl RecordingSink {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn events(&self) -> Vec<SinkEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The current content of a posted message: its last edit, or what was posted.
    pub fn current(&self, at: &MessageRef) -> Option<SlackMessage> {
        self.events().into_iter().rev().find_map(|e| match e {
            SinkEvent::Updated { at: a, message } if &a == at => Some(message),
            SinkEvent::Posted { at: a, message, .. } if &a == at => Some(message),
            _ => None,
        })
    }

    /// What users see in the thread now: every posted message in its latest version.
    pub fn thread_view(&self) -> Vec<SlackMessage> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                SinkEvent::Posted { at, .. } => self.current(at),
                SinkEvent::Updated { .. } => None,
            })
            .collect()
    }
}

#[async_trait]
impl DiagnosisSink for RecordingSink {
    async fn post_placeholder(
        &self,
        thread: &ThreadRef,
        msg: &SlackMessage,
    ) -> anyhow::Result<MessageRef> {
        let mut ev = self
            .events
            .lock()
            .map_err(|_| anyhow::anyhow!("recording sink poisoned"))?;
        let n = ev.len() + 1;
        let at = MessageRef {
            channel: thread.channel.clone(),
            ts: format!("1.{n:06}"),
        };
        ev.push(SinkEvent::Posted {
            thread: thread.clone(),
            at: at.clone(),
            message: msg.clone(),
        });
        Ok(at)
    }

    async fn update(&self, msg: &MessageRef, text: &str, blocks: &Value) -> anyhow::Result<()> {
        let mut ev = self
            .events
            .lock()
            .map_err(|_| anyhow::anyhow!("recording sink poisoned"))?;
        anyhow::ensure!(
            ev.iter()
                .any(|e| matches!(e, SinkEvent::Posted { at, .. } if at == msg)),
            "message_not_found"
        );
        ev.push(SinkEvent::Updated {
            at: msg.clone(),
            message: SlackMessage {
                text: text.to_string(),
                blocks: blocks.clone(),
            },
        });
        Ok(())
    }
}
