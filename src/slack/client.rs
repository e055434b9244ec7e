//! The one outbound Slack Web API client of the process (cheap to clone).
//!
//! Every call has a timeout; posts are paced per channel; a 429 waits `Retry-After` and
//! retries; 5xx and transport errors back off (`retry::Backoff`); `invalid_blocks` and
//! `msg_too_long` fall back to plain, cut text so the message is never lost.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::retry::{Backoff, Verdict};
use crate::slack::blocks;
use crate::slack::message::{Marker, Message};
use crate::slack::ratelimit::Pacer;

/// Why a Web API call failed. Never contains the token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SlackError {
    /// Slack answered `ok: false` (e.g. `channel_not_found`, `invalid_auth`).
    #[error("Slack {method} failed: {error}")]
    Api { method: String, error: String },
    #[error("Slack {method} rate limited (retry after {retry_after:?})")]
    RateLimited {
        method: String,
        retry_after: Duration,
    },
    #[error("Slack {method} answered HTTP {status}")]
    Server { method: String, status: u16 },
    #[error("Slack {method} timed out after {after:?}")]
    Timeout { method: String, after: Duration },
    #[error("Slack {method} unreachable: {reason}")]
    Transport { method: String, reason: String },
}

impl SlackError {
    /// The kind of failure, a fixed set (the `outcome` label of `sentinel_slack_api_calls`).
    pub fn kind(&self) -> &'static str {
        match self {
            SlackError::Api { .. } => "api_error",
            SlackError::RateLimited { .. } => "rate_limited",
            SlackError::Server { .. } => "server_error",
            SlackError::Timeout { .. } => "timeout",
            SlackError::Transport { .. } => "transport_error",
        }
    }

    /// The Slack error code for `Api` errors (`invalid_blocks`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            SlackError::Api { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Tunables; the defaults suit real Slack.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub timeout: Duration,
    /// Per-channel pacing of chat.postMessage (Slack: about 1/s with short bursts).
    pub post_interval: Duration,
    pub post_burst: u32,
    /// Retries for 5xx, timeouts of idempotent calls and transport errors.
    pub backoff: Backoff,
    /// 429s honoured per call before giving up (each waits `Retry-After`).
    pub max_rate_limited_retries: u32,
    /// Every request is counted here, by method and outcome.
    pub metrics: crate::metrics::Metrics,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            post_interval: Duration::from_millis(1000),
            post_burst: 3,
            backoff: Backoff {
                attempts: 4,
                base: Duration::from_millis(250),
                max: Duration::from_secs(8),
            },
            max_rate_limited_retries: 20,
            metrics: crate::metrics::Metrics::default(),
        }
    }
}

#[derive(Clone)]
pub struct SlackClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_url: String,
    token: SecretString,
    opts: ClientOptions,
    pacer: Pacer,
}

/// A posted message's coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
}

/// Methods Slack only accepts as form/query parameters (read methods).
const QUERY_METHODS: &[&str] = &[
    "users.info",
    "usergroups.users.list",
    "conversations.info",
    "conversations.replies",
    "chat.getPermalink",
];

impl SlackClient {
    /// `api_url` without trailing slash, e.g. `https://slack.com/api`.
    pub fn new(api_url: &str, token: SecretString, opts: ClientOptions) -> anyhow::Result<Self> {
        let http = crate::net::client_builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("sentinel/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let pacer = Pacer::new(opts.post_interval, opts.post_burst);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api_url: api_url.trim_end_matches('/').to_string(),
                token,
                opts,
                pacer,
            }),
        })
    }

    /// One attempt of `method` with `token` (no retries): for start-up checks.
    pub async fn call_once_with(
        &self,
        method: &str,
        token: &SecretString,
        body: &Value,
    ) -> Result<Value, SlackError> {
        let url = format!("{}/{method}", self.inner.api_url);
        self.send(method, token, &url, body).await
    }

    /// Like [`SlackClient::call_once_with`], also returning the scopes Slack says the token
    /// was granted (its `x-oauth-scopes` header), for `sentinel doctor`.
    pub async fn call_once_scoped(
        &self,
        method: &str,
        token: &SecretString,
        body: &Value,
    ) -> Result<(Value, Option<String>), SlackError> {
        let url = format!("{}/{method}", self.inner.api_url);
        self.send_full(method, token, &url, body).await
    }

    /// Calls a Web API method with the bot token, retrying as described in the module doc.
    pub async fn call(&self, method: &str, body: Value) -> Result<Value, SlackError> {
        let url = format!("{}/{method}", self.inner.api_url);
        self.with_retries(method, &url, &body, None).await
    }

    async fn with_retries(
        &self,
        method: &str,
        url: &str,
        body: &Value,
        pace_key: Option<&str>,
    ) -> Result<Value, SlackError> {
        let idempotent = !matches!(
            method,
            "chat.postMessage" | "chat.postEphemeral" | "respond"
        );
        let mut limited = 0;
        loop {
            if let Some(k) = pace_key {
                self.inner.pacer.wait(k).await;
            }
            let r = self
                .inner
                .opts
                .backoff
                .run(
                    || self.send(method, &self.inner.token, url, body),
                    |e| match e {
                        SlackError::Server { .. } | SlackError::Transport { .. } => Verdict::Retry,
                        SlackError::Timeout { .. } if idempotent => Verdict::Retry,
                        _ => Verdict::Fatal,
                    },
                )
                .await;
            match r {
                Err(SlackError::RateLimited { retry_after, .. })
                    if limited < self.inner.opts.max_rate_limited_retries =>
                {
                    limited += 1;
                    tracing::warn!(
                        slack.method = method,
                        retry_after_ms = retry_after.as_millis() as u64,
                        "rate limited by Slack, waiting"
                    );
                    if let Some(k) = pace_key {
                        self.inner.pacer.penalize(k, retry_after);
                    } else {
                        tokio::time::sleep(retry_after).await;
                    }
                }
                other => return other,
            }
        }
    }

    async fn send(
        &self,
        method: &str,
        token: &SecretString,
        url: &str,
        body: &Value,
    ) -> Result<Value, SlackError> {
        self.send_full(method, token, url, body)
            .await
            .map(|(v, _)| v)
    }

    /// One HTTP call: the JSON answer and the `x-oauth-scopes` header, if any.
    async fn send_full(
        &self,
        method: &str,
        token: &SecretString,
        url: &str,
        body: &Value,
    ) -> Result<(Value, Option<String>), SlackError> {
        let timeout = self.inner.opts.timeout;
        let req = if QUERY_METHODS.contains(&method) {
            let mut u = url::Url::parse(url).map_err(|e| SlackError::Transport {
                method: method.into(),
                reason: e.to_string(),
            })?;
            if let Some(obj) = body.as_object() {
                let mut q = u.query_pairs_mut();
                for (k, v) in obj {
                    let v = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    q.append_pair(k, &v);
                }
            }
            self.inner.http.get(u)
        } else {
            self.inner.http.post(url).json(body)
        };
        let req = req.bearer_auth(token.expose_secret());
        let fut = async {
            let resp = req
                .send()
                .await
                .map_err(|e| classify_reqwest(method, timeout, e))?;
            let status = resp.status();
            if status.as_u16() == 429 {
                let secs = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1);
                return Err(SlackError::RateLimited {
                    method: method.into(),
                    retry_after: Duration::from_secs(secs),
                });
            }
            if status.is_server_error() {
                return Err(SlackError::Server {
                    method: method.into(),
                    status: status.as_u16(),
                });
            }
            let scopes = resp
                .headers()
                .get("x-oauth-scopes")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let v: Value = resp
                .json()
                .await
                .map_err(|e| classify_reqwest(method, timeout, e))?;
            if v["ok"].as_bool() == Some(true) {
                Ok((v, scopes))
            } else {
                Err(SlackError::Api {
                    method: method.into(),
                    error: v["error"].as_str().unwrap_or("unknown_error").to_string(),
                })
            }
        };
        let result = tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(SlackError::Timeout {
                    method: method.into(),
                    after: timeout,
                })
            });
        let outcome = result.as_ref().map_or_else(SlackError::kind, |_| "ok");
        self.inner.opts.metrics.slack_call(method, outcome);
        result
    }

    /// Posts a message (in `thread_ts`'s thread when given). Rejected blocks or too-long
    /// text fall back to the plain text, cut, so the message is never lost.
    pub async fn post_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        msg: &Message,
    ) -> Result<Posted, SlackError> {
        let (text, blocks) = (msg.text(), msg.api_blocks());
        let url = format!("{}/chat.postMessage", self.inner.api_url);
        let mut body = json!({"channel": channel, "text": blocks::message_text(text)});
        if let Some(m) = msg.marker() {
            body["metadata"] = m.to_metadata();
        }
        if let Some(t) = thread_ts {
            body["thread_ts"] = json!(t);
        }
        if let Some(b) = &blocks {
            body["blocks"] = json!(b);
        }
        let r = self
            .with_retries("chat.postMessage", &url, &body, Some(channel))
            .await;
        let v = match r {
            Err(e) if matches!(e.code(), Some("invalid_blocks" | "msg_too_long")) => {
                tracing::warn!(slack.channel = channel, error = %e, "falling back to plain text");
                let fallback = fallback_text(text, blocks.as_deref());
                body["text"] = json!(fallback);
                if let Some(o) = body.as_object_mut() {
                    o.remove("blocks");
                }
                self.with_retries("chat.postMessage", &url, &body, Some(channel))
                    .await?
            }
            other => other?,
        };
        Ok(Posted {
            channel: v["channel"].as_str().unwrap_or(channel).to_string(),
            ts: v["ts"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Replaces a message's text and blocks, with the same plain-text fallback.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        msg: &Message,
    ) -> Result<(), SlackError> {
        let (text, blocks) = (msg.text(), msg.api_blocks());
        let mut body = json!({"channel": channel, "ts": ts, "text": blocks::message_text(text)});
        if let Some(b) = &blocks {
            body["blocks"] = json!(b);
        }
        match self.call("chat.update", body.clone()).await {
            Err(e) if matches!(e.code(), Some("invalid_blocks" | "msg_too_long")) => {
                body["text"] = json!(fallback_text(text, blocks.as_deref()));
                body["blocks"] = json!([]);
                self.call("chat.update", body).await.map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    /// A message only `user` sees, in `thread_ts` when given (else in the channel).
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        msg: &Message,
    ) -> Result<(), SlackError> {
        let (text, blocks) = (msg.text(), msg.api_blocks());
        let mut body =
            json!({"channel": channel, "user": user, "text": blocks::message_text(text)});
        if let Some(t) = thread_ts {
            body["thread_ts"] = json!(t);
        }
        if let Some(b) = &blocks {
            body["blocks"] = json!(b);
        }
        match self.call("chat.postEphemeral", body.clone()).await {
            Err(e) if matches!(e.code(), Some("invalid_blocks" | "msg_too_long")) => {
                body["text"] = json!(fallback_text(text, blocks.as_deref()));
                if let Some(o) = body.as_object_mut() {
                    o.remove("blocks");
                }
                self.call("chat.postEphemeral", body).await.map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    pub async fn add_reaction(
        &self,
        channel: &str,
        ts: &str,
        name: &str,
    ) -> Result<(), SlackError> {
        match self
            .call(
                "reactions.add",
                json!({"channel": channel, "timestamp": ts, "name": name}),
            )
            .await
        {
            Err(e) if e.code() == Some("already_reacted") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    pub async fn get_permalink(&self, channel: &str, ts: &str) -> Result<String, SlackError> {
        let v = self
            .call(
                "chat.getPermalink",
                json!({"channel": channel, "message_ts": ts}),
            )
            .await?;
        Ok(v["permalink"].as_str().unwrap_or_default().to_string())
    }

    /// Answers through a `response_url` (slash commands, buttons). `in_channel` makes it
    /// visible to everyone; otherwise only the user sees it.
    pub async fn respond(
        &self,
        response_url: &str,
        msg: &Message,
        in_channel: bool,
    ) -> Result<(), SlackError> {
        let (text, blocks) = (msg.text(), msg.api_blocks());
        let mut body = json!({
            "text": blocks::message_text(text),
            "response_type": if in_channel { "in_channel" } else { "ephemeral" },
        });
        if let Some(b) = blocks {
            body["blocks"] = json!(b);
        }
        // response_url needs no token; the URL is the credential. The same timeout and
        // 5xx backoff apply; a 429 there is honoured too.
        let fut = self.inner.opts.backoff.run(
            || async {
                let result = self.respond_once(response_url, &body).await;
                // Counted as a Slack call (method `response_url`), each attempt; a 429
                // is retried with the 5xx backoff but counted as rate limited.
                let outcome = match &result {
                    Ok(()) => "ok",
                    Err(SlackError::Server { status: 429, .. }) => "rate_limited",
                    Err(e) => e.kind(),
                };
                self.inner.opts.metrics.slack_call("response_url", outcome);
                result
            },
            |e| match e {
                SlackError::Server { .. } | SlackError::Transport { .. } => Verdict::Retry,
                _ => Verdict::Fatal,
            },
        );
        fut.await
    }

    async fn respond_once(&self, response_url: &str, body: &Value) -> Result<(), SlackError> {
        let resp = self
            .inner
            .http
            .post(response_url)
            .json(body)
            .send()
            .await
            .map_err(|e| classify_reqwest("respond", self.inner.opts.timeout, e))?;
        let s = resp.status();
        if s.is_server_error() || s.as_u16() == 429 {
            return Err(SlackError::Server {
                method: "respond".into(),
                status: s.as_u16(),
            });
        }
        if !s.is_success() {
            return Err(SlackError::Api {
                method: "respond".into(),
                error: format!("http_{}", s.as_u16()),
            });
        }
        Ok(())
    }

    /// The `ts` of a message carrying `marker`: in the thread `thread_ts` (its replies), or
    /// among the channel's top-level messages newer than `oldest` (a Slack ts). Used before
    /// re-posting something that may already be in Slack (a crash after the post, before
    /// its `ts` was recorded).
    pub async fn find_marked(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        oldest: &str,
        marker: &Marker,
    ) -> Result<Option<String>, SlackError> {
        let (method, args) = match thread_ts {
            Some(t) => (
                "conversations.replies",
                json!({"channel": channel, "ts": t, "limit": 200, "include_all_metadata": true}),
            ),
            None => (
                "conversations.history",
                json!({"channel": channel, "oldest": oldest, "limit": 200, "include_all_metadata": true}),
            ),
        };
        let v = self.call(method, args).await?;
        Ok(v["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| marker.matches(m))
            .and_then(|m| m["ts"].as_str())
            .map(str::to_string))
    }

    /// Opens a modal; `trigger_id` comes from the interaction and lives about 3 s.
    pub async fn open_view(&self, trigger_id: &str, view: Value) -> Result<String, SlackError> {
        let v = self
            .call(
                "views.open",
                json!({"trigger_id": trigger_id, "view": view}),
            )
            .await?;
        Ok(v["view"]["id"].as_str().unwrap_or_default().to_string())
    }
}

fn fallback_text(text: &str, blocks: Option<&[Value]>) -> String {
    let t = if text.trim().is_empty() {
        blocks.map(blocks::plain_text).unwrap_or_default()
    } else {
        text.to_string()
    };
    blocks::message_text(&t)
}

fn classify_reqwest(method: &str, timeout: Duration, e: reqwest::Error) -> SlackError {
    if e.is_timeout() {
        SlackError::Timeout {
            method: method.into(),
            after: timeout,
        }
    } else {
        // reqwest errors carry the URL, never headers: the token cannot leak here.
        SlackError::Transport {
            method: method.into(),
            reason: e.without_url().to_string(),
        }
    }
}
