//! The LLM client: chat completions on any OpenAI-compatible endpoint, through async-openai.
//!
//! Every call has a timeout; 429 and 5xx are retried with backoff and jitter; structured
//! output uses `response_format: json_schema` and falls back to JSON mode (by config, or
//! automatically once the server rejects json_schema); tokens are recorded per call and
//! counted against a per-incident budget (`ledger`).

pub mod ledger;
pub mod testserver;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    ChatCompletionStreamOptions, CreateChatCompletionRequest, ResponseFormat,
    ResponseFormatJsonSchema,
};
use async_openai::Client;
use futures::StreamExt;
use regex::Regex;
use secrecy::ExposeSecret;
use serde_json::Value;

pub use ledger::{CallRecord, TokenLedger};

use crate::config::{LlmConfig, StructuredMode};
use crate::retry::{Backoff, Verdict};

/// Who says a message in the conversation sent to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(c: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: c.into(),
        }
    }
    pub fn user(c: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: c.into(),
        }
    }
    pub fn assistant(c: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: c.into(),
        }
    }
}

/// One structured-output request. Every text in `messages` must already be redacted.
#[derive(Debug, Clone)]
pub struct JsonRequest {
    /// The incident whose budget pays, if any.
    pub incident: Option<String>,
    /// `diagnosis`, `repair`, `question`: recorded with the tokens.
    pub purpose: &'static str,
    pub messages: Vec<ChatMessage>,
    pub schema_name: &'static str,
    pub schema: Value,
}

/// The model's raw answer.
#[derive(Debug, Clone)]
pub struct Completion {
    pub content: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("the LLM did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the LLM is rate limiting us")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the LLM server failed with HTTP {0}")]
    Server(u16),
    #[error("the LLM refused the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("the incident's token budget is spent ({used} of {budget})")]
    Budget { used: u64, budget: u64 },
    #[error("the LLM returned no content")]
    Empty,
    #[error("cannot reach the LLM: {0}")]
    Transport(String),
}

impl LlmError {
    /// The `outcome` recorded in `llm_calls`.
    pub fn outcome(&self) -> &'static str {
        match self {
            LlmError::Timeout(_) => "timeout",
            LlmError::RateLimited { .. } => "rate_limited",
            LlmError::Server(_) => "server_error",
            LlmError::Rejected { .. } => "rejected",
            LlmError::Budget { .. } => "budget",
            LlmError::Empty => "empty",
            LlmError::Transport(_) => "error",
        }
    }

    fn verdict(&self) -> Verdict {
        match self {
            LlmError::RateLimited {
                retry_after: Some(d),
            } => Verdict::RetryAfter(*d),
            LlmError::RateLimited { retry_after: None }
            | LlmError::Server(_)
            | LlmError::Transport(_) => Verdict::Retry,
            // A timed-out call already used its whole allowance; the caller has a deadline.
            LlmError::Timeout(_) | LlmError::Rejected { .. } | LlmError::Budget { .. } => {
                Verdict::Fatal
            }
            LlmError::Empty => Verdict::Retry,
        }
    }

    /// True when the server does not understand `response_format: json_schema`.
    fn rejects_json_schema(&self) -> bool {
        match self {
            LlmError::Rejected { status, message } => {
                let m = message.to_ascii_lowercase();
                (*status == 400 || *status == 422 || *status == 501)
                    && (m.contains("json_schema") || m.contains("response_format"))
            }
            _ => false,
        }
    }
}

/// "Please try again in 1.5s" / "in 250ms", as OpenAI and LiteLLM phrase rate limits.
static TRY_AGAIN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)try again in ([0-9]+(?:\.[0-9]+)?)\s*(ms|s)\b").unwrap());

fn retry_hint(message: &str) -> Option<Duration> {
    let c = TRY_AGAIN.captures(message)?;
    let n: f64 = c[1].parse().ok()?;
    let ms = if &c[2] == "ms" { n } else { n * 1000.0 };
    Some(Duration::from_millis(ms.clamp(0.0, 60_000.0) as u64))
}

fn classify(e: OpenAIError) -> LlmError {
    match e {
        OpenAIError::ApiError(r) => {
            let status = r.status_code.as_u16();
            if status == 429 {
                LlmError::RateLimited {
                    retry_after: retry_hint(&r.api_error.message),
                }
            } else if status >= 500 {
                LlmError::Server(status)
            } else {
                LlmError::Rejected {
                    status,
                    message: crate::text::truncate_chars(&r.api_error.message, 300),
                }
            }
        }
        OpenAIError::Reqwest(e) => match e.status() {
            Some(s) if s.as_u16() == 429 => LlmError::RateLimited { retry_after: None },
            Some(s) if s.is_server_error() => LlmError::Server(s.as_u16()),
            _ => LlmError::Transport(e.without_url().to_string()),
        },
        other => LlmError::Transport(crate::text::truncate_chars(&other.to_string(), 300)),
    }
}

pub struct LlmClient {
    client: Client<OpenAIConfig>,
    cfg: LlmConfig,
    ledger: TokenLedger,
    backoff: Backoff,
    /// Cleared the first time the server rejects `json_schema`; JSON mode from then on.
    schema_supported: AtomicBool,
}

impl LlmClient {
    pub fn new(cfg: LlmConfig, ledger: TokenLedger) -> Self {
        // reqwest's rustls needs a process-wide provider; main installs it, tests may not have.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key = cfg
            .api_key
            .as_ref()
            .map(|k| k.expose_secret().to_string())
            .unwrap_or_default();
        let oai = OpenAIConfig::new()
            .with_api_base(cfg.base_url.trim_end_matches('/'))
            .with_api_key(key);
        let http = crate::net::client_builder()
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .build()
            .unwrap_or_default();
        let backoff = Backoff {
            attempts: cfg.attempts.max(1),
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
        };
        Self {
            // Our `Backoff` is the only retry policy (async-openai would retry on its own too).
            client: Client::with_config(oai)
                .with_http_service(async_openai::middleware::ReqwestService::new(http)),
            schema_supported: AtomicBool::new(cfg.structured == StructuredMode::JsonSchema),
            cfg,
            ledger,
            backoff,
        }
    }

    /// Overrides the retry policy (tests use short delays).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn config(&self) -> &LlmConfig {
        &self.cfg
    }

    pub fn ledger(&self) -> &TokenLedger {
        &self.ledger
    }

    /// True while json_schema output is requested (false after a downgrade to JSON mode).
    pub fn uses_json_schema(&self) -> bool {
        self.schema_supported.load(Ordering::Relaxed)
    }

    /// Sends `req` and returns the model's content (not yet parsed or validated).
    #[tracing::instrument(skip_all, fields(llm.purpose = req.purpose, llm.model = %self.cfg.model))]
    pub async fn complete_json(&self, req: &JsonRequest) -> Result<Completion, LlmError> {
        if let Some(incident) = &req.incident {
            let used = self.ledger.used(incident).await;
            if used >= self.cfg.incident_token_budget {
                return Err(LlmError::Budget {
                    used,
                    budget: self.cfg.incident_token_budget,
                });
            }
        }
        let schema = self.uses_json_schema();
        match self.with_retries(req, schema).await {
            Err(e) if schema && e.rejects_json_schema() => {
                tracing::warn!(error = %e, "LLM server rejects json_schema output; using JSON mode");
                self.schema_supported.store(false, Ordering::Relaxed);
                self.with_retries(req, false).await
            }
            other => other,
        }
    }

    async fn with_retries(&self, req: &JsonRequest, schema: bool) -> Result<Completion, LlmError> {
        self.backoff
            .run(|| self.attempt(req, schema), LlmError::verdict)
            .await
    }

    async fn attempt(&self, req: &JsonRequest, schema: bool) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let request = self.request(req, schema);
        let result = match tokio::time::timeout(self.cfg.timeout, self.send(request)).await {
            Ok(r) => r,
            Err(_) => Err(LlmError::Timeout(self.cfg.timeout)),
        };
        let (outcome, p, c) = match &result {
            Ok(c) => ("ok", c.prompt_tokens, c.completion_tokens),
            Err(e) => (e.outcome(), 0, 0),
        };
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(_) => tracing::info!(
                duration_ms = ms,
                prompt_tokens = p,
                completion_tokens = c,
                "LLM call"
            ),
            Err(e) => tracing::warn!(duration_ms = ms, error = %e, "LLM call failed"),
        }
        self.ledger
            .record(CallRecord {
                incident: req.incident.clone(),
                purpose: req.purpose,
                model: self.cfg.model.clone(),
                prompt_tokens: p,
                completion_tokens: c,
                outcome,
                duration_ms: ms,
            })
            .await;
        result
    }

    fn request(&self, req: &JsonRequest, schema: bool) -> CreateChatCompletionRequest {
        let messages = req
            .messages
            .iter()
            .map(|m| -> ChatCompletionRequestMessage {
                match m.role {
                    // JSON mode has no schema parameter: the system prompt carries it.
                    Role::System if !schema => ChatCompletionRequestSystemMessage::from(
                        format!(
                            "{}\nThe JSON object must match this JSON Schema:\n{}",
                            m.content, req.schema
                        )
                        .as_str(),
                    )
                    .into(),
                    Role::System => {
                        ChatCompletionRequestSystemMessage::from(m.content.as_str()).into()
                    }
                    Role::User => ChatCompletionRequestUserMessage::from(m.content.as_str()).into(),
                    Role::Assistant => {
                        ChatCompletionRequestAssistantMessage::from(m.content.as_str()).into()
                    }
                }
            })
            .collect();
        let response_format = if schema {
            ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    name: req.schema_name.to_string(),
                    schema: req.schema.clone(),
                    strict: Some(true),
                    description: None,
                },
            }
        } else {
            ResponseFormat::JsonObject
        };
        CreateChatCompletionRequest {
            model: self.cfg.model.clone(),
            messages,
            response_format: Some(response_format),
            max_completion_tokens: Some(self.cfg.max_output_tokens),
            temperature: Some(0.1),
            stream: self.cfg.stream.then_some(true),
            stream_options: self.cfg.stream.then_some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            }),
            ..Default::default()
        }
    }

    async fn send(&self, request: CreateChatCompletionRequest) -> Result<Completion, LlmError> {
        if self.cfg.stream {
            return self.send_streamed(request).await;
        }
        let resp = self.client.chat().create(request).await.map_err(classify)?;
        let usage = resp.usage.unwrap_or_default();
        let content = resp
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .filter(|c| !c.trim().is_empty())
            .ok_or(LlmError::Empty)?;
        Ok(Completion {
            content,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        })
    }

    async fn send_streamed(
        &self,
        request: CreateChatCompletionRequest,
    ) -> Result<Completion, LlmError> {
        let mut stream = self
            .client
            .chat()
            .create_stream(request)
            .await
            .map_err(classify)?;
        let mut content = String::new();
        let (mut p, mut c) = (0, 0);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(classify)?;
            if let Some(u) = chunk.usage {
                p = u.prompt_tokens;
                c = u.completion_tokens;
            }
            for choice in chunk.choices {
                if let Some(t) = choice.delta.content {
                    content.push_str(&t);
                }
            }
        }
        if content.trim().is_empty() {
            return Err(LlmError::Empty);
        }
        Ok(Completion {
            content,
            prompt_tokens: p,
            completion_tokens: c,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_hints_are_read_from_rate_limit_messages() {
        assert_eq!(
            retry_hint("Rate limit reached. Please try again in 1.5s."),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_hint("try again in 250ms"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_hint("slow down"), None);
    }

    #[test]
    fn json_schema_rejections_are_recognised() {
        let e = LlmError::Rejected {
            status: 400,
            message: "Invalid parameter: 'response_format' of type 'json_schema' is not supported"
                .into(),
        };
        assert!(e.rejects_json_schema());
        let e = LlmError::Rejected {
            status: 401,
            message: "bad key".into(),
        };
        assert!(!e.rejects_json_schema());
    }
}
