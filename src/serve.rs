//! `sentinel serve`: checks the Slack tokens, then runs everything in one process: the
//! Socket Mode bot, the webhook server and the incident engine (with diagnosis), all on
//! one database so several replicas can run side by side.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::bot::{Bot, BotSettings, Context};
use crate::config::{AlertsConfig, SlackConfig};
use crate::diagnosis::{Diagnoser, DiagnoserOptions};
use crate::http::AppState;
use crate::incidents::intake::{AlertWriter, WriterConfig};
use crate::incidents::{Engine, EngineConfig, Routes};
use crate::knowledge::KnowledgeBase;
use crate::slack::socket::{ListenerOptions, SocketListener};
use crate::slack::{auth, ClientOptions, SlackClient};

/// A running bot: the listener plus the context its handlers share.
pub struct Running {
    pub listener: SocketListener,
    pub ctx: Arc<Context>,
}

/// What the bot's handlers work with besides Slack.
pub struct Services {
    pub kb: KnowledgeBase,
    /// Answers questions (`@sentinel`, `/sentinel ask`); without an LLM it lists sections.
    pub diagnoser: Arc<Diagnoser>,
    /// Alerts read from watched channels go here; `None` reacts to them only.
    pub alerts: Option<AlertWriter>,
}

impl Services {
    /// Runbook answers only: no LLM, no alert intake (tests of the Slack core).
    pub fn runbooks_only(kb: KnowledgeBase, runbook_base_url: Option<String>) -> Self {
        let diagnoser = Diagnoser::new(
            kb.clone(),
            None,
            DiagnoserOptions {
                runbook_base_url,
                ..DiagnoserOptions::default()
            },
        );
        Self {
            kb,
            diagnoser: Arc::new(diagnoser),
            alerts: None,
        }
    }
}

/// The process's one outbound Slack client.
pub fn slack_client(cfg: &SlackConfig) -> anyhow::Result<SlackClient> {
    SlackClient::new(
        &cfg.api_url,
        cfg.bot_token.clone(),
        ClientOptions {
            timeout: Duration::from_secs(cfg.timeout_secs),
            ..ClientOptions::default()
        },
    )
}

/// Starts the bot alone with runbook answers (see [`start_with`]).
pub async fn start(
    cfg: &SlackConfig,
    kb: KnowledgeBase,
    listener_opts: ListenerOptions,
) -> anyhow::Result<Running> {
    let services = Services::runbooks_only(kb, cfg.runbook_base_url.clone());
    start_with(cfg, slack_client(cfg)?, services, listener_opts).await
}

/// Checks the tokens (the error names the wrong one), then connects the bot.
pub async fn start_with(
    cfg: &SlackConfig,
    slack: SlackClient,
    services: Services,
    listener_opts: ListenerOptions,
) -> anyhow::Result<Running> {
    let me = auth::check_tokens(&slack, &cfg.app_token, &cfg.bot_token).await?;
    tracing::info!(bot.user_id = %me.user_id, bot.id = %me.bot_id, team.id = %me.team_id, "Slack tokens accepted");
    let ctx = Arc::new(Context {
        pool: services.kb.pool.clone(),
        slack,
        kb: services.kb,
        diagnoser: services.diagnoser,
        alerts: services.alerts,
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

/// Where webhook incidents go: the configured routes, else the first watched channel;
/// `None` when neither is set (webhook alerts are then refused with 422).
pub fn routes(alerts: &AlertsConfig, slack: &SlackConfig) -> Option<Routes> {
    alerts
        .routes
        .clone()
        .or_else(|| slack.watch_channels.first().map(Routes::single))
}

/// The sentence printed at start-up when webhook alerts have no channel.
pub const NO_ALERT_CHANNEL: &str = "SENTINEL_ALERT_CHANNEL is not set: webhook alerts will be refused with 422 until it is (alert messages in watched channels are still handled)";

/// The whole product in one process: bot, webhook server, incident engine.
pub struct Stack {
    pub bot: Running,
    pub engine: Arc<Engine>,
    pub webhook_addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    server: JoinHandle<anyhow::Result<()>>,
    engine_task: JoinHandle<()>,
    housekeeping: JoinHandle<()>,
}

/// Starts the stack: the webhook server on `listener`, the engine posting through the bot's
/// Slack client (diagnosis included), the bot reading alerts from watched channels.
pub async fn start_stack(
    slack_cfg: &SlackConfig,
    alerts_cfg: &AlertsConfig,
    diagnoser: Arc<Diagnoser>,
    listener: TcpListener,
    listener_opts: ListenerOptions,
) -> anyhow::Result<Stack> {
    let kb = diagnoser.kb.clone();
    let pool = kb.pool.clone();
    let slack = slack_client(slack_cfg)?;
    let routes = routes(alerts_cfg, slack_cfg);
    if routes.is_none() {
        tracing::warn!("{NO_ALERT_CHANNEL}");
    }
    let accepts_alerts = routes.is_some();
    let mut ecfg = EngineConfig::new(routes.unwrap_or_default());
    ecfg.storm = alerts_cfg.storm;
    ecfg.runbook_base_url = alerts_cfg
        .runbook_base_url
        .clone()
        .or_else(|| slack_cfg.runbook_base_url.clone());
    let engine = Arc::new(
        Engine::new(pool.clone(), Arc::new(slack.clone()), ecfg).with_diagnoser(diagnoser.clone()),
    );
    let writer = AlertWriter::spawn(
        pool.clone(),
        Some(engine.wake.clone()),
        WriterConfig::default(),
    );
    let services = Services {
        kb,
        diagnoser,
        alerts: Some(writer.clone()),
    };
    let bot = start_with(slack_cfg, slack, services, listener_opts).await?;
    let webhook_addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let when_stopped = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let state = AppState {
        pool,
        writer,
        auth: Arc::new(alerts_cfg.auth.clone()),
        max_body_bytes: alerts_cfg.max_body_bytes,
        slack_connected: Some(bot.listener.connected()),
        accepts_alerts,
    };
    let housekeeping = tokio::spawn(housekeeping(state.pool.clone(), when_stopped()));
    let server = tokio::spawn(crate::http::run(listener, state, when_stopped()));
    let engine_task = tokio::spawn(engine.clone().run(when_stopped()));
    Ok(Stack {
        bot,
        engine,
        webhook_addr,
        stop,
        server,
        engine_task,
        housekeeping,
    })
}

/// Slack event claims older than this are pruned (Slack retries within minutes).
const DEDUPE_KEEP_DAYS: i32 = 7;

/// Periodic clean-up shared by all replicas (each statement is idempotent).
async fn housekeeping(pool: sqlx::PgPool, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        match crate::bot::dedupe::prune(&pool, DEDUPE_KEEP_DAYS).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned old Slack event claims"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "pruning Slack event claims failed")
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

impl Stack {
    /// Stops the webhook server (in-flight requests finish), the engine and the bot.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let grace = Duration::from_secs(10);
        match tokio::time::timeout(grace, self.server).await {
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %format!("{e:#}"), "webhook server stopped with an error")
            }
            Err(_) => tracing::warn!("webhook server did not stop in time"),
            _ => {}
        }
        self.housekeeping.abort();
        if tokio::time::timeout(grace, self.engine_task).await.is_err() {
            tracing::warn!("incident engine did not stop in time");
        }
        self.bot.listener.shutdown().await;
    }
}
