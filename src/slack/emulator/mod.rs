//! A Slack emulator speaking Slack's real payloads over real HTTP and WebSocket: the Web
//! API methods Sentinel uses, Socket Mode with acks and redelivery, Slack's limits, and a
//! record of everything for assertions. Used by tests, `sentinel demo` and the ack bench.

pub mod socket;
pub mod state;
pub mod transcript;
pub mod validate;
pub mod web;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::routing::{any, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use state::{
    Ack, Edit, Ephemeral, Message, Reaction, State, View, APP_ID, BOT_ID, BOT_USER_ID, TEAM_ID,
};
use state::{Pending, ResponseTarget};

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub bot_token: String,
    pub app_token: String,
    /// Slack's ack deadline before redelivery (3 s).
    pub ack_timeout: Duration,
    /// chat.postMessage burst per channel before 429s.
    pub post_burst: u32,
    /// Bot scopes the installed app was granted: sent as `x-oauth-scopes` on every bot
    /// token call; a method whose scope is missing answers `missing_scope`. Default: the
    /// shipped manifest's.
    pub granted_scopes: Vec<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            bot_token: "xoxb-emulator-bot-token".into(),
            app_token: "xapp-1-emulator-app-token".into(),
            ack_timeout: Duration::from_secs(3),
            post_burst: 4,
            granted_scopes: crate::slack::manifest::Manifest::shipped()
                .map(|m| m.bot_scopes().into_iter().collect())
                .unwrap_or_default(),
        }
    }
}

pub struct Inner {
    pub cfg: EmulatorConfig,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    state: Mutex<State>,
    /// Woken on every change, for `wait_for`.
    pub changed: Notify,
}

pub type Shared = Arc<Inner>;

impl Inner {
    /// Never held across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running emulator; dropping it stops the server.
pub struct Emulator {
    pub shared: Shared,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Emulator {
    /// Binds `127.0.0.1:0` and serves.
    pub async fn start(cfg: EmulatorConfig) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Inner {
            cfg,
            base_url: format!("http://{addr}"),
            state: Mutex::new(State::seed()),
            changed: Notify::new(),
        });
        let app = Router::new()
            .route("/api/{method}", any(web::api))
            .route("/link/", any(socket::link))
            .route("/respond/{id}", post(web::respond))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "slack emulator stopped");
            }
        });
        let redeliver = tokio::spawn(socket::redelivery_loop(shared.clone()));
        Ok(Self {
            shared,
            tasks: vec![server, redeliver],
        })
    }

    /// The Web API base to give the bot (`SLACK_API_URL`), no trailing slash.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.shared.base_url)
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Polls `cond` on every change until it holds or `timeout` passes.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&State) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if let Some(v) = cond(&self.shared.lock()) {
                return Some(v);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // Also re-check periodically: some changes (time passing) notify nobody.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), notified).await;
        }
    }

    /// Waits until `n` Socket Mode connections are up.
    pub async fn wait_connected(&self, n: usize, timeout: Duration) -> bool {
        self.wait_for(timeout, |s| (s.connections.len() >= n).then_some(()))
            .await
            .is_some()
    }

    /// A user posts `text` in `channel` (in `thread_ts` if given): stored as a message, then a
    /// `message` event and, if the text mentions the bot, an `app_mention` event.
    /// Returns the message ts.
    pub fn user_says(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> String {
        let ts = {
            let mut st = self.shared.lock();
            let ts = st.next_ts();
            st.messages.push(Message {
                channel: channel.into(),
                ts: ts.clone(),
                thread_ts: thread_ts.map(str::to_string),
                user: Some(user.into()),
                bot_id: None,
                text: text.into(),
                blocks: None,
                edits: 0,
                metadata: None,
            });
            ts
        };
        let mut event = json!({
            "type": "message", "channel": channel, "user": user, "text": text, "ts": ts,
            "event_ts": ts, "channel_type": "channel", "team": TEAM_ID,
        });
        if let Some(t) = thread_ts {
            event["thread_ts"] = json!(t);
        }
        self.send_event(event.clone());
        if text.contains(&format!("<@{BOT_USER_ID}>")) {
            event["type"] = json!("app_mention");
            if let Some(o) = event.as_object_mut() {
                o.remove("channel_type");
            }
            self.send_event(event);
        }
        ts
    }

    /// Another app (Alertmanager) posts `event` JSON (a `bot_message`) in its channel.
    pub fn bot_posts(&self, event: Value) -> String {
        let mut event = event;
        let channel = event["channel"].as_str().unwrap_or("C0ALERTS").to_string();
        let ts = {
            let mut st = self.shared.lock();
            let ts = st.next_ts();
            st.messages.push(Message {
                channel: channel.clone(),
                ts: ts.clone(),
                thread_ts: None,
                user: None,
                bot_id: event["bot_id"].as_str().map(str::to_string),
                text: event["text"].as_str().unwrap_or_default().into(),
                blocks: None,
                edits: 0,
                metadata: None,
            });
            ts
        };
        event["ts"] = json!(ts);
        event["event_ts"] = json!(ts);
        self.send_event(event);
        ts
    }

    /// Wraps `event` in an `event_callback` with a fresh `event_id`; returns the event id.
    pub fn send_event(&self, event: Value) -> String {
        let event_id = self.shared.lock().next_id("Ev0");
        self.send_event_with_id(&event_id, event);
        event_id
    }

    /// Sends an event with a given `event_id` in a new envelope (as Slack's retries do).
    /// Returns the envelope id.
    pub fn send_event_with_id(&self, event_id: &str, event: Value) -> String {
        let payload = json!({
            "token": "verification-token-unused", "team_id": TEAM_ID, "api_app_id": APP_ID,
            "event": event, "type": "event_callback", "event_id": event_id,
            "event_time": 1_700_000_000, "event_context": "4-emulator",
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": true, "is_enterprise_install": false}],
            "is_ext_shared_channel": false,
        });
        self.send_envelope("events_api", payload, false, None)
    }

    /// `/command text` typed by `user` in `channel`. Returns the envelope id.
    pub fn slash_command(&self, channel: &str, user: &str, command: &str, text: &str) -> String {
        let (trigger, response_url) = self.interaction_ids(channel, user, None);
        let channel_name = self
            .shared
            .lock()
            .channels
            .get(channel)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let payload = json!({
            "token": "verification-token-unused", "team_id": TEAM_ID, "team_domain": "sentinel-test",
            "channel_id": channel, "channel_name": channel_name, "user_id": user, "user_name": user.to_lowercase(),
            "command": command, "text": text, "api_app_id": APP_ID, "is_enterprise_install": "false",
            "response_url": response_url, "trigger_id": trigger,
        });
        self.send_envelope(
            "slash_commands",
            payload,
            true,
            Some((channel.into(), user.into())),
        )
    }

    /// `user` clicks the button `action_id` on message `message_ts`, or on an ephemeral
    /// message only `user` sees. Returns the envelope id.
    pub fn click_button(
        &self,
        channel: &str,
        message_ts: &str,
        user: &str,
        action_id: &str,
    ) -> Option<String> {
        self.click_button_with(channel, message_ts, user, action_id, None)
    }

    /// Like [`Emulator::click_button`], with the button's value replaced (a forged or
    /// altered click, as a hostile client could send).
    pub fn click_button_with(
        &self,
        channel: &str,
        message_ts: &str,
        user: &str,
        action_id: &str,
        value: Option<&str>,
    ) -> Option<String> {
        let (message, blocks, thread_ts) = {
            let st = self.shared.lock();
            match st
                .messages
                .iter()
                .find(|m| m.channel == channel && m.ts == message_ts)
            {
                Some(m) => (
                    Some(web::message_json(m)),
                    m.blocks.clone()?,
                    m.thread_ts.clone(),
                ),
                // Slack sends no `message` for an ephemeral one; the container says so.
                None => {
                    let e = st
                        .ephemerals
                        .iter()
                        .find(|e| e.channel == channel && e.ts == message_ts && e.user == user)?;
                    (None, e.blocks.clone()?, e.thread_ts.clone())
                }
            }
        };
        let (button, block_id) = blocks.as_array()?.iter().find_map(|b| {
            let elements = b["elements"].as_array().into_iter().flatten();
            elements
                .chain(std::iter::once(&b["accessory"]))
                .find(|e| e["type"] == "button" && e["action_id"] == action_id)
                .map(|e| (e.clone(), b["block_id"].clone()))
        })?;
        let (trigger, response_url) = self.interaction_ids(channel, user, Some(message_ts));
        let action_ts = self.shared.lock().next_ts();
        let mut container = json!({"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": message.is_none()});
        if let Some(t) = thread_ts {
            container["thread_ts"] = json!(t);
        }
        let mut payload = json!({
            "type": "block_actions",
            "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": TEAM_ID},
            "api_app_id": APP_ID, "token": "verification-token-unused",
            "container": container,
            "trigger_id": trigger, "team": {"id": TEAM_ID, "domain": "sentinel-test"},
            "enterprise": null, "is_enterprise_install": false,
            "channel": {"id": channel, "name": channel.to_lowercase()},
            "state": {"values": {}}, "response_url": response_url,
            "actions": [{
                "action_id": action_id, "block_id": block_id, "text": button["text"],
                "value": value.map_or(button["value"].clone(), |v| json!(v)),
                "type": button["type"], "action_ts": action_ts,
            }],
        });
        if let Some(m) = message {
            payload["message"] = m;
        }
        Some(self.send_envelope("interactive", payload, false, None))
    }

    /// `user` closes the modal `view_id` without submitting it (the Cancel button).
    /// False when no such modal is open for `user`.
    pub fn close_view(&self, view_id: &str, user: &str) -> bool {
        let mut st = self.shared.lock();
        let Some(v) = st
            .views
            .iter_mut()
            .find(|v| v.id == view_id && v.user == user && !v.closed)
        else {
            return false;
        };
        v.closed = true;
        v.revision += 1;
        drop(st);
        self.shared.changed.notify_waiters();
        true
    }

    /// `user` submits the open modal `view_id` with `values` (block_id -> action_id -> value).
    /// `None` when no such modal is open for `user`.
    pub fn submit_view(&self, view_id: &str, user: &str, values: Value) -> Option<String> {
        let view = self
            .shared
            .lock()
            .views
            .iter()
            .find(|v| v.id == view_id && v.user == user && !v.closed)
            .cloned()?;
        let trigger = self.shared.lock().new_trigger(user);
        let mut state = serde_json::Map::new();
        if let Some(obj) = values.as_object() {
            for (block, actions) in obj {
                let mut a = serde_json::Map::new();
                for (action, value) in actions.as_object().into_iter().flatten() {
                    a.insert(
                        action.clone(),
                        json!({"type": "plain_text_input", "value": value}),
                    );
                }
                state.insert(block.clone(), Value::Object(a));
            }
        }
        let payload = json!({
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": "sentinel-test"},
            "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": TEAM_ID},
            "api_app_id": APP_ID, "token": "verification-token-unused", "trigger_id": trigger,
            "view": {
                "id": view.id, "team_id": TEAM_ID, "type": "modal", "app_id": APP_ID, "bot_id": BOT_ID,
                "callback_id": view.view["callback_id"], "private_metadata": view.view["private_metadata"],
                "hash": view.hash, "title": view.view["title"], "blocks": view.view["blocks"],
                "state": {"values": state},
            },
            "response_urls": [], "is_enterprise_install": false,
        });
        Some(self.send_envelope("interactive", payload, true, None))
    }

    /// Sends any envelope; returns its id.
    pub fn send_envelope(
        &self,
        kind: &str,
        payload: Value,
        accepts: bool,
        reply_to: Option<(String, String)>,
    ) -> String {
        let envelope_id = uuid::Uuid::new_v4().to_string();
        socket::enqueue(
            &self.shared,
            Pending {
                envelope_id: envelope_id.clone(),
                envelope_type: kind.into(),
                payload,
                accepts_response_payload: accepts,
                deliveries: 0,
                last_sent: None,
                reply_to,
            },
        );
        envelope_id
    }

    /// Sends the payload of an earlier envelope again in a new envelope (a duplicate
    /// delivery, as after a lost ack). Returns the new envelope id.
    pub fn resend(&self, envelope_id: &str) -> Option<String> {
        let p = self.shared.lock().sent.get(envelope_id).cloned()?;
        Some(self.send_envelope(
            &p.envelope_type,
            p.payload,
            p.accepts_response_payload,
            p.reply_to,
        ))
    }

    /// Sends a raw text frame to one connection (malformed input); if it carries an
    /// `envelope_id`, its ack is tracked like any other.
    pub fn send_raw_frame(&self, text: &str) {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let mut st = self.shared.lock();
        if let Some(id) = v["envelope_id"].as_str() {
            st.pending.insert(
                id.into(),
                Pending {
                    envelope_id: id.into(),
                    envelope_type: v["type"].as_str().unwrap_or("?").into(),
                    payload: v["payload"].clone(),
                    accepts_response_payload: false,
                    deliveries: 1,
                    last_sent: Some(Instant::now()),
                    reply_to: None,
                },
            );
        }
        if let Some(c) = st.pick_connection() {
            let _ = c.tx.send(state::Outgoing::Text(text.to_string()));
        }
    }

    fn interaction_ids(
        &self,
        channel: &str,
        user: &str,
        message_ts: Option<&str>,
    ) -> (String, String) {
        let mut st = self.shared.lock();
        let trigger = st.new_trigger(user);
        let rid = st.next_id("R");
        st.responses.insert(
            rid.clone(),
            ResponseTarget {
                channel: channel.into(),
                user: user.into(),
                message_ts: message_ts.map(str::to_string),
            },
        );
        (trigger, format!("{}/respond/{rid}", self.shared.base_url))
    }

    pub fn disconnect_all(&self, reason: &str) {
        socket::disconnect_all(&self.shared, reason);
    }

    /// Drops every socket; with `offline` also refuses new ones until `set_offline(false)`.
    pub fn drop_connections(&self) {
        socket::drop_all(&self.shared);
    }

    pub fn set_offline(&self, offline: bool) {
        self.shared.lock().faults.offline = offline;
        if offline {
            socket::drop_all(&self.shared);
        }
    }

    /// The next `count` calls of `method` answer HTTP `status`.
    pub fn fail_next(&self, method: &str, count: u32, status: u16) {
        self.shared
            .lock()
            .faults
            .http_errors
            .insert(method.into(), (count, status));
    }

    /// The next `count` calls of `method` answer 429 with `Retry-After: secs`.
    pub fn ratelimit_next(&self, method: &str, count: u32, secs: u64) {
        self.shared
            .lock()
            .faults
            .rate_limits
            .insert(method.into(), (count, secs));
    }

    /// The next `count` posts in `channel` are stored at once but answered only after
    /// `delay` (their `ts` are listed in `State::held`): a caller killed meanwhile never
    /// learns the `ts` of a post Slack shows. A fault knob; Slack itself never holds.
    pub fn hold_posts(&self, channel: &str, count: u32, delay: Duration) {
        self.shared.lock().faults.held_posts = Some(state::HeldPosts {
            channel: channel.into(),
            remaining: count,
            delay,
        });
    }

    /// Messages of `channel`, top level and replies, in order.
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        self.shared
            .lock()
            .messages
            .iter()
            .filter(|m| m.channel == channel)
            .cloned()
            .collect()
    }

    /// Replies in the thread under `ts` (not the parent).
    pub fn thread(&self, channel: &str, ts: &str) -> Vec<Message> {
        self.shared
            .lock()
            .messages
            .iter()
            .filter(|m| m.channel == channel && m.thread_ts.as_deref() == Some(ts) && m.ts != ts)
            .cloned()
            .collect()
    }

    pub fn acks(&self) -> Vec<Ack> {
        self.shared.lock().acks.clone()
    }
}
