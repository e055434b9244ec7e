//! The Socket Mode listener (slack-morphism): every envelope is parsed, queued and acked at
//! once; the work runs later on a bounded pool of background tasks. Malformed envelopes
//! are logged and acked, never retried into a crash loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use slack_morphism::prelude::*;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::slack::events::{self, Inbound, SlashCommand};

/// What the bot does with inbound Slack traffic.
#[async_trait]
pub trait Dispatch: Send + Sync + 'static {
    /// The immediate answer carried in a slash command's ack (e.g. help). Must be fast
    /// and without I/O: the ack waits for it.
    fn command_ack(&self, _cmd: &SlashCommand) -> Option<Value> {
        None
    }
    /// The work, run in the background after the ack.
    async fn handle(&self, inbound: Inbound);
}

#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// Socket Mode connections (1..=10); each envelope arrives on one of them.
    pub connections: u32,
    /// Seconds between reconnect attempts while Slack is unreachable (at least 1).
    pub reconnect_secs: u64,
    /// Seconds between pings; a dead socket is noticed after a few missed pongs.
    pub ping_secs: u64,
    /// Seconds between opening the connections (slack-morphism staggers them).
    pub stagger_secs: u64,
    /// Background jobs at once.
    pub concurrency: usize,
    /// Connections, reconnects and ack latency are recorded here.
    pub metrics: crate::metrics::Metrics,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            connections: 2,
            reconnect_secs: 5,
            ping_secs: 15,
            stagger_secs: 2,
            concurrency: 64,
            metrics: crate::metrics::Metrics::default(),
        }
    }
}

struct ListenerState {
    queue: mpsc::UnboundedSender<Inbound>,
    dispatch: Arc<dyn Dispatch>,
    /// Set by Slack's `hello` on a Socket Mode connection; cleared at shutdown.
    connected: Arc<AtomicBool>,
    metrics: crate::metrics::Metrics,
    /// Connections asked for: `hello`s past these are reconnects.
    connections: u32,
}

/// A running listener: connections plus the worker pool. `shutdown` stops both.
pub struct SocketListener {
    listener: SlackClientSocketModeListener<SlackClientHyperHttpsConnector>,
    worker: JoinHandle<()>,
    connected: Arc<AtomicBool>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// slack-morphism's HTTP connector pointed at `api_url`, plain http allowed (emulator).
pub fn connector(api_url: &str) -> SlackClientHyperHttpsConnector {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_all_versions()
        .build();
    SlackClientHyperConnector::with_connector(https).with_slack_api_url(api_url)
}

impl SocketListener {
    pub async fn start(
        api_url: &str,
        app_token: &SecretString,
        dispatch: Arc<dyn Dispatch>,
        opts: ListenerOptions,
    ) -> anyhow::Result<Self> {
        let client = Arc::new(SlackClient::new(connector(api_url)));
        let (tx, rx) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicBool::new(false));
        let env = Arc::new(
            SlackClientEventsListenerEnvironment::new(client)
                .with_error_handler(on_error)
                .with_user_state(ListenerState {
                    queue: tx,
                    dispatch: dispatch.clone(),
                    connected: connected.clone(),
                    metrics: opts.metrics.clone(),
                    connections: opts.connections.clamp(1, 10),
                }),
        );
        let callbacks = SlackSocketModeListenerCallbacks::new()
            // Slack's `hello` on a socket: the connection is up (the event type is not
            // re-exported by slack-morphism, so the callback is a closure).
            .with_hello_events(|_hello, _client, states| async move {
                with_state(&states, |s| {
                    s.connected.store(true, Ordering::Relaxed);
                    s.metrics.socket_hello(s.connections);
                })
                .await;
            })
            .with_push_events(on_push)
            .with_command_events(on_command)
            .with_interaction_events(on_interaction);
        let cfg = SlackClientSocketModeConfig::new()
            .with_max_connections_count(opts.connections.clamp(1, 10))
            .with_reconnect_timeout_in_seconds(opts.reconnect_secs.max(1))
            .with_ping_interval_in_seconds(opts.ping_secs.max(1))
            .with_initial_backoff_in_seconds(opts.stagger_secs);
        let listener = SlackClientSocketModeListener::new(&cfg, env, callbacks);
        let token = SlackApiToken::new(SlackApiTokenValue(app_token.expose_secret().to_string()));
        listener
            .listen_for(&token)
            .await
            .map_err(|e| anyhow::anyhow!("cannot register the Socket Mode token: {e}"))?;
        listener.start().await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(run_worker(rx, dispatch, opts.concurrency.max(1), stopped));
        Ok(Self {
            listener,
            worker,
            connected,
            stop,
        })
    }

    /// True once Slack said `hello` on a Socket Mode connection (for `/readyz`).
    pub fn connected(&self) -> Arc<AtomicBool> {
        self.connected.clone()
    }

    /// Closes the Socket Mode connections (Slack redelivers envelopes not yet acked to
    /// other connections), then lets every envelope already acked finish its work.
    pub async fn shutdown(self) {
        self.connected.store(false, Ordering::Relaxed);
        self.listener.shutdown().await;
        let _ = self.stop.send(true);
        if let Err(e) = self.worker.await {
            tracing::warn!(error = %e, "Slack worker pool ended abnormally");
        }
    }
}

/// Runs queued jobs, at most `concurrency` at once. The queue is unbounded so the ack path
/// never waits; memory per job is one parsed payload.
/// On `stop`, the jobs already queued (acked) still run, and it returns when every job
/// has finished.
async fn run_worker(
    mut rx: mpsc::UnboundedReceiver<Inbound>,
    dispatch: Arc<dyn Dispatch>,
    concurrency: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    loop {
        let job = tokio::select! {
            job = rx.recv() => job,
            _ = stopped(&mut stop) => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(job) = job else {
            break;
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let d = dispatch.clone();
        tokio::spawn(async move {
            d.handle(job).await;
            drop(permit);
        });
    }
    // Every permit back: every job has finished.
    let _ = permits.acquire_many(concurrency as u32).await;
}

/// Resolves once `stop` is true (the guard is not held across an await).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn with_state<T>(
    states: &SlackClientEventsUserState,
    f: impl FnOnce(&ListenerState) -> T,
) -> Option<T> {
    let guard = states.read().await;
    guard.get_user_state::<ListenerState>().map(f)
}

fn enqueue(state: &ListenerState, inbound: Inbound) {
    if let Inbound::Ignored { reason } = &inbound {
        tracing::debug!(reason = %reason, "ignored Slack payload");
        return;
    }
    if state.queue.send(inbound).is_err() {
        tracing::error!("worker queue closed; dropping a Slack event");
    }
}

/// Enqueues, then records how long the envelope waited for its ack (slack-morphism sends
/// the ack as soon as the callback returns).
fn enqueue_timed(
    state: &ListenerState,
    inbound: Inbound,
    kind: &'static str,
    arrived: std::time::Instant,
) {
    enqueue(state, inbound);
    state.metrics.envelope_acked(kind, arrived.elapsed());
}

async fn on_push(
    ev: SlackPushEventCallback,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let arrived = std::time::Instant::now();
    let inbound = match serde_json::to_value(&ev) {
        Ok(v) => events::parse_events_api(&v),
        Err(e) => Inbound::Ignored {
            reason: format!("unserializable event: {e}"),
        },
    };
    with_state(&states, |s| {
        enqueue_timed(s, inbound, "events_api", arrived)
    })
    .await;
    Ok(())
}

async fn on_command(
    ev: SlackCommandEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let arrived = std::time::Instant::now();
    let inbound = match serde_json::to_value(&ev) {
        Ok(v) => events::parse_slash_command(&v),
        Err(e) => Inbound::Ignored {
            reason: format!("unserializable command: {e}"),
        },
    };
    let reply = with_state(&states, |s| {
        let reply = match &inbound {
            Inbound::Command(c) => s.dispatch.command_ack(c),
            _ => None,
        };
        enqueue_timed(s, inbound, "slash_commands", arrived);
        reply
    })
    .await
    .flatten();
    let response = reply
        .and_then(|v| serde_json::from_value::<SlackCommandEventResponse>(v).ok())
        .unwrap_or_else(|| SlackCommandEventResponse::new(SlackMessageContent::new()));
    Ok(response)
}

async fn on_interaction(
    ev: SlackInteractionEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let arrived = std::time::Instant::now();
    let inbound = match serde_json::to_value(&ev) {
        Ok(v) => events::parse_interactive(&v),
        Err(e) => Inbound::Ignored {
            reason: format!("unserializable interaction: {e}"),
        },
    };
    with_state(&states, |s| {
        enqueue_timed(s, inbound, "interactive", arrived)
    })
    .await;
    Ok(())
}

/// Every error is logged and the envelope acked (200): a payload that failed once fails
/// again on redelivery, and de-duplication makes acking safe.
fn on_error(
    err: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) -> HttpStatusCode {
    // slack-morphism's protocol errors may include the raw body; log the kind only.
    let msg = err.to_string();
    tracing::warn!(error = %crate::text::truncate_chars(&msg, 200), "Slack Socket Mode error (acked)");
    HttpStatusCode::OK
}
