//! `sentinel serve`: checks the Slack tokens, then runs the Socket Mode bot until Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use crate::bot::{Bot, BotSettings, Context};
use crate::config::SlackConfig;
use crate::knowledge::KnowledgeBase;
use crate::slack::socket::{ListenerOptions, SocketListener};
use crate::slack::{auth, ClientOptions, SlackClient};

/// A running bot: the listener plus the context its handlers share.
pub struct Running {
    pub listener: SocketListener,
    pub ctx: Arc<Context>,
}

/// Checks the tokens (the error names the wrong one), then connects.
pub async fn start(
    cfg: &SlackConfig,
    kb: KnowledgeBase,
    listener_opts: ListenerOptions,
) -> anyhow::Result<Running> {
    let slack = SlackClient::new(
        &cfg.api_url,
        cfg.bot_token.clone(),
        ClientOptions {
            timeout: Duration::from_secs(cfg.timeout_secs),
            ..ClientOptions::default()
        },
    )?;
    let me = auth::check_tokens(&slack, &cfg.app_token, &cfg.bot_token).await?;
    tracing::info!(bot.user_id = %me.user_id, bot.id = %me.bot_id, team.id = %me.team_id, "Slack tokens accepted");
    let ctx = Arc::new(Context {
        pool: kb.pool.clone(),
        slack,
        kb,
        settings: BotSettings {
            bot_user_id: me.user_id,
            bot_id: me.bot_id,
            watch_channels: cfg.watch_channels.clone(),
            runbook_base_url: cfg.runbook_base_url.clone(),
        },
    });
    let listener = SocketListener::start(
        &cfg.api_url,
        &cfg.app_token,
        Arc::new(Bot { ctx: ctx.clone() }),
        listener_opts,
    )
    .await?;
    Ok(Running { listener, ctx })
}

/// Listener options from the configuration.
pub fn listener_options(cfg: &SlackConfig) -> ListenerOptions {
    ListenerOptions {
        connections: cfg.connections,
        concurrency: cfg.handler_concurrency,
        ..ListenerOptions::default()
    }
}
