//! The one way to run Sentinel in a process: the webhook server and its alert writer, the
//! incident engine, and the Socket Mode bot, under one shutdown signal. `serve`,
//! `serve-webhooks`, `demo`, the benches and the tests all start through [`Stack::start`];
//! what differs between them is only which [`SlackSide`] they pass.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::actions::{Actions, ActionsConfig, Mode};
use crate::audit::AuditKey;
use crate::bot::{Bot, BotSettings, Context};
use crate::config::{AlertsConfig, SlackConfig};
use crate::db::health::DbHealth;
use crate::diagnosis::Diagnoser;
use crate::http::AppState;
use crate::incidents::intake::{AlertWriter, WriterConfig};
use crate::incidents::{Engine, EngineConfig, Routes};
use crate::metrics::Metrics;
use crate::slack::socket::{ListenerOptions, SocketListener};
use crate::slack::{auth, ClientOptions, SlackClient, SlackPort};

/// Where the stack's Slack side goes.
pub enum SlackSide {
    /// Slack (or the emulator) over Socket Mode: the bot answers, the engine posts through
    /// the bot's Web API client.
    Bot {
        config: SlackConfig,
        listener: ListenerOptions,
    },
    /// No bot; the engine posts through this port (the console printer, a recorder).
    Port(Arc<dyn SlackPort>),
    /// No Slack at all: webhook alerts are stored for another process to show.
    StoreOnly,
}

impl SlackSide {
    /// The bot on the project's Slack emulator (the demo, the benches): one Socket Mode
    /// connection that starts at once and reconnects fast, watching `watch`.
    pub fn emulator(emu: &crate::slack::emulator::Emulator, watch: &[&str]) -> Self {
        SlackSide::Bot {
            config: SlackConfig {
                app_token: secrecy::SecretString::from(emu.shared.cfg.app_token.clone()),
                bot_token: secrecy::SecretString::from(emu.shared.cfg.bot_token.clone()),
                api_url: emu.api_url(),
                connections: 1,
                watch_channels: watch.iter().map(|s| s.to_string()).collect(),
                handler_concurrency: 64,
                timeout_secs: 5,
                runbook_base_url: None,
            },
            listener: ListenerOptions {
                connections: 1,
                reconnect_secs: 1,
                stagger_secs: 0,
                ..ListenerOptions::default()
            },
        }
    }
}

/// What a stack is made of. `App` (app.rs) builds these from configuration.
pub struct Parts {
    pub pool: PgPool,
    pub alerts: AlertsConfig,
    /// Where the webhook server listens (bind `127.0.0.1:0` in tests).
    pub listener: TcpListener,
    pub slack: SlackSide,
    /// Runbook replies and diagnoses for incidents, answers for the bot. Without one the
    /// engine posts roots only; a bot needs one.
    pub diagnoser: Option<Arc<Diagnoser>>,
    /// Remediation actions (off unless `SENTINEL_ACTIONS` says otherwise).
    pub actions: ActionsSetup,
    /// What `/metrics` exposes; the same handle the knowledge base and LLM client record into.
    pub metrics: Metrics,
    /// `SENTINEL_METRICS_ADDR`: `/metrics` gets its own server here (else the webhook's).
    pub metrics_listener: Option<TcpListener>,
}

/// What actions need from the configuration.
#[derive(Debug, Clone, Default)]
pub struct ActionsSetup {
    pub config: ActionsConfig,
    pub audit_key: Option<AuditKey>,
    /// `SENTINEL_AUDIT_CHANNEL`: the chain head is posted there after every action.
    pub audit_channel: Option<String>,
}

/// A running bot: the Socket Mode listener plus the context its handlers share.
pub struct Running {
    pub listener: SocketListener,
    pub ctx: Arc<Context>,
}

/// The whole product in one process.
pub struct Stack {
    pub bot: Option<Running>,
    pub engine: Option<Arc<Engine>>,
    pub webhook_addr: SocketAddr,
    draining: Arc<AtomicBool>,
    stop: tokio::sync::watch::Sender<bool>,
    server: JoinHandle<anyhow::Result<()>>,
    engine_task: Option<JoinHandle<()>>,
    metrics_server: Option<JoinHandle<anyhow::Result<()>>>,
    housekeeping: JoinHandle<()>,
    sweeper: Option<JoinHandle<()>>,
}

/// The sentence logged at start-up when webhook alerts have no channel.
pub const NO_ALERT_CHANNEL: &str = "SENTINEL_ALERT_CHANNEL is not set: webhook alerts will be refused with 422 until it is (alert messages in watched channels are still handled)";

/// The process's one outbound Slack client.
pub fn slack_client(cfg: &SlackConfig, metrics: &Metrics) -> anyhow::Result<SlackClient> {
    SlackClient::new(
        &cfg.api_url,
        cfg.bot_token.clone(),
        ClientOptions {
            timeout: Duration::from_secs(cfg.timeout_secs),
            metrics: metrics.clone(),
            ..ClientOptions::default()
        },
    )
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
pub fn routes(alerts: &AlertsConfig, slack: Option<&SlackConfig>) -> Option<Routes> {
    alerts
        .routes
        .clone()
        .or_else(|| slack?.watch_channels.first().map(Routes::single))
}

impl Stack {
    /// Starts everything `parts` asks for; a bot's tokens are checked first (the error
    /// names the wrong one).
    pub async fn start(parts: Parts) -> anyhow::Result<Stack> {
        let Parts {
            pool,
            alerts,
            listener,
            slack,
            diagnoser,
            actions,
            metrics,
            metrics_listener,
        } = parts;
        let slack_cfg = match &slack {
            SlackSide::Bot { config, .. } => Some(config),
            _ => None,
        };
        let routes = routes(&alerts, slack_cfg);
        let store_only = matches!(slack, SlackSide::StoreOnly);
        if routes.is_none() && !store_only {
            tracing::warn!("{NO_ALERT_CHANNEL}");
        }
        let accepts_alerts = routes.is_some() || store_only;
        let mut ecfg = EngineConfig::new(routes.unwrap_or_default());
        ecfg.storm = alerts.storm;
        ecfg.runbook_base_url = alerts
            .runbook_base_url
            .clone()
            .or_else(|| slack_cfg.and_then(|s| s.runbook_base_url.clone()));
        let client = slack_cfg.map(|c| slack_client(c, &metrics)).transpose()?;
        let port: Option<Arc<dyn SlackPort>> = match (&slack, &client) {
            (SlackSide::Bot { .. }, Some(c)) => Some(Arc::new(c.clone())),
            (SlackSide::Port(p), _) => Some(p.clone()),
            _ => None,
        };
        let actions = match actions.config.mode {
            Mode::Off => None,
            _ => {
                let dir = client
                    .clone()
                    .map(|c| Arc::new(c) as Arc<dyn crate::actions::approvers::Directory>);
                Some(Arc::new(
                    Actions::new(pool.clone(), actions.config, actions.audit_key, dir)?
                        .with_metrics(metrics.clone()),
                ))
            }
        };
        let db = DbHealth::spawn(&pool);
        let engine = port.clone().map(|p| {
            let mut e = Engine::new(pool.clone(), p, ecfg);
            e.diagnoser = diagnoser.clone();
            e.actions = actions.clone();
            e.db = db.clone();
            Arc::new(e)
        });
        let writer = AlertWriter::spawn(
            pool.clone(),
            engine.as_ref().map(|e| e.wake.clone()),
            WriterConfig::default(),
        );
        let bot = match (slack, client) {
            (
                SlackSide::Bot {
                    config,
                    mut listener,
                },
                Some(client),
            ) => {
                listener.metrics = metrics.clone();
                let diagnoser =
                    diagnoser.ok_or_else(|| anyhow::anyhow!("the Slack bot needs a diagnoser"))?;
                Some(
                    start_bot(
                        &config,
                        client,
                        diagnoser,
                        writer.clone(),
                        actions.clone(),
                        listener,
                        db.clone(),
                    )
                    .await?,
                )
            }
            _ => None,
        };
        let webhook_addr = listener.local_addr()?;
        let draining = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let when_stopped = move || {
            let mut rx = stopped.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let state = AppState {
            pool: pool.clone(),
            writer,
            auth: Arc::new(alerts.auth.clone()),
            max_body_bytes: alerts.max_body_bytes,
            slack_connected: bot.as_ref().map(|b| b.listener.connected()),
            accepts_alerts,
            draining: draining.clone(),
            metrics,
            serve_metrics: metrics_listener.is_none(),
            db,
        };
        let metrics_server = metrics_listener
            .map(|l| tokio::spawn(crate::http::run_metrics(l, state.clone(), when_stopped())));
        let housekeeping = tokio::spawn(housekeeping(pool, state.db.clone(), when_stopped()));
        let sweeper = match (&actions, &port) {
            (Some(a), Some(p)) => Some(tokio::spawn(sweep_actions(
                a.clone(),
                p.clone(),
                state.db.clone(),
                when_stopped(),
            ))),
            _ => None,
        };
        let server = tokio::spawn(crate::http::run(listener, state, when_stopped()));
        let engine_task = engine.clone().map(|e| tokio::spawn(e.run(when_stopped())));
        Ok(Stack {
            bot,
            engine,
            webhook_addr,
            draining,
            stop,
            server,
            engine_task,
            metrics_server,
            housekeeping,
            sweeper,
        })
    }

    /// Runs until `signal` resolves, then drains and shuts down within `deadline`.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
        deadline: Duration,
    ) {
        signal.await;
        tracing::info!(deadline_s = deadline.as_secs(), "shutting down");
        if tokio::time::timeout(deadline, self.drain(deadline))
            .await
            .is_err()
        {
            tracing::warn!("shutdown deadline passed; exiting with work unfinished (leases expire and other replicas resume it)");
        }
    }

    /// Stops the webhook server (in-flight requests finish), the engine and the bot.
    pub async fn shutdown(self) {
        self.drain(Duration::from_secs(10)).await
    }

    /// Drains: new webhooks get 503 + `Retry-After` and `/readyz` says not ready; the bot
    /// closes Socket Mode (envelopes not yet acked are redelivered elsewhere); requests
    /// already accepted, and the engine's current step, finish within `grace`.
    async fn drain(self, grace: Duration) {
        let Stack {
            bot,
            draining,
            stop,
            server,
            engine_task,
            metrics_server,
            housekeeping,
            sweeper,
            ..
        } = self;
        draining.store(true, Ordering::Relaxed);
        if let Some(bot) = bot {
            // Envelopes already acked finish their work, within the grace period.
            if tokio::time::timeout(grace, bot.listener.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("Slack handlers did not finish in time");
            }
        }
        let _ = stop.send(true);
        match tokio::time::timeout(grace, server).await {
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %format!("{e:#}"), "webhook server stopped with an error")
            }
            Err(_) => tracing::warn!("webhook server did not stop in time"),
            _ => {}
        }
        housekeeping.abort();
        if let Some(m) = metrics_server {
            m.abort();
        }
        if let Some(s) = sweeper {
            s.abort();
        }
        if let Some(t) = engine_task {
            if tokio::time::timeout(grace, t).await.is_err() {
                tracing::warn!("incident engine did not stop in time");
            }
        }
        tracing::info!("stopped");
    }
}

/// Checks the tokens, then connects the bot over Socket Mode.
async fn start_bot(
    cfg: &SlackConfig,
    slack: SlackClient,
    diagnoser: Arc<Diagnoser>,
    alerts: AlertWriter,
    actions: Option<Arc<Actions>>,
    listener_opts: ListenerOptions,
    db: DbHealth,
) -> anyhow::Result<Running> {
    let me = auth::check_tokens(&slack, &cfg.app_token, &cfg.bot_token).await?;
    tracing::info!(bot.user_id = %me.user_id, bot.id = %me.bot_id, team.id = %me.team_id, "Slack tokens accepted");
    let kb = diagnoser.kb.clone();
    let ctx = Arc::new(Context {
        pool: kb.pool.clone(),
        slack,
        kb,
        diagnoser,
        alerts,
        actions,
        settings: BotSettings {
            bot_user_id: me.user_id,
            bot_id: me.bot_id,
            watch_channels: cfg.watch_channels.clone(),
            runbook_base_url: cfg.runbook_base_url.clone(),
        },
        db,
        metrics: listener_opts.metrics.clone(),
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

/// Every replica sweeps proposals: expiries, runs whose replica died, approved ones waiting.
/// While the database is down there is nothing to sweep; it waits.
async fn sweep_actions(
    actions: Arc<Actions>,
    port: Arc<dyn SlackPort>,
    db: DbHealth,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        if db.is_up() {
            if let Err(e) = actions.sweep(port.clone()).await {
                db.log_failed("sweeping action proposals failed", &e);
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Slack event claims older than this are pruned (Slack retries within minutes).
const DEDUPE_KEEP_DAYS: i32 = 7;

/// Periodic clean-up shared by all replicas (each statement is idempotent).
async fn housekeeping(pool: PgPool, db: DbHealth, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        match crate::bot::dedupe::prune(&pool, DEDUPE_KEEP_DAYS).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned old Slack event claims"),
            Err(e) => db.log_failed("pruning Slack event claims failed", &e),
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}
