//! The bot: one `Context` for every handler, routing of inbound Slack traffic to
//! handlers after the "never twice" claim, and the `/sentinel` command parser.

pub mod answer;
pub mod command;
pub mod dedupe;
pub mod handlers;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::db::health::{DbHealth, UNAVAILABLE};
use crate::diagnosis::Diagnoser;
use crate::incidents::intake::AlertWriter;
use crate::knowledge::KnowledgeBase;
use crate::slack::events::{Inbound, SlashCommand};
use crate::slack::socket::Dispatch;
use crate::slack::{Message, Mrkdwn, SlackClient};
use handlers::HandlerError;

/// Bot settings the handlers read (from `SlackConfig` and `auth.test`).
#[derive(Debug, Clone, Default)]
pub struct BotSettings {
    /// The bot's own user id and bot id: its messages are never handled.
    pub bot_user_id: String,
    pub bot_id: String,
    /// Channels whose plain messages the bot reads.
    pub watch_channels: Vec<String>,
    /// Where runbook links point (`<base>/<path>#<anchor>`); plain paths when unset.
    pub runbook_base_url: Option<String>,
}

/// Everything a handler needs; cheap to share (`Arc<Context>`).
pub struct Context {
    pub pool: PgPool,
    pub slack: SlackClient,
    pub kb: KnowledgeBase,
    /// Answers questions with the LLM when one is configured (sections otherwise).
    pub diagnoser: Arc<Diagnoser>,
    /// Alert messages in watched channels are stored here and become incidents.
    pub alerts: AlertWriter,
    /// Remediation actions: clicks and `/sentinel run`; `None` when they are off.
    pub actions: Option<Arc<crate::actions::Actions>>,
    pub settings: BotSettings,
    /// Whether the database answers: while it does not, people get one sentence saying
    /// so at once instead of silence.
    pub db: DbHealth,
    /// Alert messages count as alerts received and stored (source `slack`).
    pub metrics: crate::metrics::Metrics,
}

/// What a Slack user reads when their request meets a database outage.
pub fn degraded_sentence() -> String {
    format!("⚠️ {UNAVAILABLE}. Sentinel is degraded: alerts sent by webhook are retried by their senders and will show up once it is back.")
}

/// How long an alert message posted in a watched channel waits for the database to come
/// back before it is given up (and logged): it has no user to tell.
const ALERT_POST_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Routes inbound Slack traffic; implements the listener's `Dispatch`.
#[derive(Clone)]
pub struct Bot {
    pub ctx: Arc<Context>,
}

#[async_trait]
impl Dispatch for Bot {
    fn command_ack(&self, cmd: &SlashCommand) -> Option<Value> {
        handlers::command_ack(cmd)
            .map(|text| json!({"text": text.as_str(), "response_type": "ephemeral"}))
    }

    async fn handle(&self, inbound: Inbound) {
        let Some(key) = inbound.dedupe_key() else {
            return;
        };
        if handlers::is_own(&self.ctx.settings, &inbound) {
            return;
        }
        let target = ReplyTo::of(&inbound);
        if !self.ctx.db.is_up() {
            match &target {
                // A person is waiting: tell them now rather than after a pool timeout.
                Some(t) => return t.tell(&self.ctx.slack, &degraded_sentence()).await,
                None => self.wait_for_db(&key).await,
            }
        }
        match dedupe::claim(&self.ctx.pool, &key, inbound.kind()).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(key = %key, "already handled");
                return;
            }
            Err(e) if self.ctx.db.observe(&e) => {
                tracing::warn!(key = %key, error = %format!("{e:#}"), "database unavailable; Slack event not handled");
                if let Some(t) = target {
                    t.tell(&self.ctx.slack, &degraded_sentence()).await;
                }
                return;
            }
            Err(e) => {
                // Without the claim we cannot promise "never twice": skip, Slack will not
                // redeliver an acked envelope, so this one is lost and logged.
                tracing::error!(key = %key, error = %format!("{e:#}"), "cannot record Slack event; skipped");
                return;
            }
        }
        let kind = inbound.kind();
        let sentence = match handlers::route(&self.ctx, inbound).await {
            Ok(()) => return,
            Err(HandlerError::User(sentence)) => sentence,
            Err(HandlerError::Internal(e)) if self.ctx.db.observe(&e) => {
                tracing::warn!(kind, key = %key, error = %format!("{e:#}"), "handler met a database outage");
                degraded_sentence()
            }
            Err(HandlerError::Internal(e)) => {
                let reference = &uuid::Uuid::new_v4().simple().to_string()[..8];
                tracing::error!(kind, key = %key, reference, error = %format!("{e:#}"), "handler failed");
                format!("Sorry, that failed on my side. It is logged with reference `{reference}`; please tell whoever runs Sentinel.")
            }
        };
        if let Some(t) = target {
            t.tell(&self.ctx.slack, &sentence).await;
        }
    }
}

impl Bot {
    /// An alert message has no one to tell: it waits (up to [`ALERT_POST_WAIT`]) for the
    /// database to come back, then is handled as usual.
    async fn wait_for_db(&self, key: &str) {
        let start = std::time::Instant::now();
        while !self.ctx.db.is_up() && start.elapsed() < ALERT_POST_WAIT {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        tracing::debug!(
            key,
            waited_ms = start.elapsed().as_millis() as u64,
            "waited for the database"
        );
    }
}

/// Where to tell the user that their request failed: only they see it.
enum ReplyTo {
    ResponseUrl(String),
    /// In the thread the request came from, when it came from one.
    Ephemeral {
        channel: String,
        user: String,
        thread_ts: Option<String>,
    },
}

impl ReplyTo {
    fn of(inbound: &Inbound) -> Option<Self> {
        match inbound {
            Inbound::Command(c) => Some(ReplyTo::ResponseUrl(c.response_url.clone())),
            Inbound::Mention(m) => m.user.clone().map(|user| ReplyTo::Ephemeral {
                channel: m.channel.clone(),
                user,
                thread_ts: m.thread_ts.clone(),
            }),
            Inbound::BlockAction(a) => a.channel_id.clone().map(|channel| ReplyTo::Ephemeral {
                channel,
                user: a.user_id.clone(),
                thread_ts: a.thread_ts.clone(),
            }),
            // Alert messages and modal submissions: the log is the only reader.
            _ => None,
        }
    }

    async fn tell(&self, slack: &SlackClient, sentence: &str) {
        let msg = Message::text_only(&Mrkdwn::untrusted(sentence));
        let sent = match self {
            ReplyTo::ResponseUrl(url) => slack.respond(url, &msg, false).await,
            ReplyTo::Ephemeral {
                channel,
                user,
                thread_ts,
            } => {
                slack
                    .post_ephemeral(channel, user, thread_ts.as_deref(), &msg)
                    .await
            }
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not tell the user that their request failed");
        }
    }
}
