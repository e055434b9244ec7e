//! Typed configuration, read once from the environment at start-up and validated.
//!
//! Every variable is documented in `.env.example`. Secrets are wrapped in `SecretString`
//! so they never print; nothing below `main` calls `std::env::var`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::audit::AuditKey;
use crate::diagnosis::breaker::BreakerConfig;
use crate::error::UserError;
use crate::http::{SourceAuth, WebhookAuth};
use crate::incidents::{Routes, StormConfig};

/// Where the local embedding model lives unless `SENTINEL_MODEL_DIR` says otherwise
/// (`make model` puts it there).
pub const DEFAULT_MODEL_DIR: &str = ".dev/models/all-MiniLM-L6-v2";

/// Source of configuration values: the process environment in production, a map in tests.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: Option<SecretString>,
    pub embedder: EmbedderConfig,
    pub alerts: AlertsConfig,
    /// Slack connection and bot settings; `None` when no Slack token is set.
    pub slack: Option<SlackConfig>,
    /// The LLM that drafts diagnoses; `None` means runbook-only (fallback) diagnoses.
    pub llm: Option<LlmConfig>,
    pub diagnosis: DiagnosisConfig,
    /// `SENTINEL_SHUTDOWN_SECS`: on SIGTERM or Ctrl-C, how long draining may take.
    pub shutdown_grace: Duration,
    /// Remediation actions (`SENTINEL_ACTIONS`, off by default).
    pub actions: crate::actions::ActionsConfig,
    pub audit: AuditConfig,
    /// `/metrics` (docs/metrics.md).
    pub metrics: MetricsConfig,
}

/// The Prometheus endpoint (docs/metrics.md).
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// `SENTINEL_METRICS_ADDR`: serve `/metrics` on this address instead of the webhook's.
    pub listen: Option<std::net::SocketAddr>,
    /// `SENTINEL_LLM_PRICE_PER_1K_TOKENS`: dollars per 1,000 LLM tokens, for the cost
    /// estimate; 0 (the default) means unknown.
    pub llm_price_per_1k: f64,
}

fn metrics_from_env(env: &dyn Env) -> Result<MetricsConfig, UserError> {
    let listen = match env.get("SENTINEL_METRICS_ADDR") {
        None => None,
        Some(v) => Some(v.trim().parse().map_err(|_| {
            UserError::new(format!(
                "SENTINEL_METRICS_ADDR must be host:port like 0.0.0.0:9464, not `{v}`"
            ))
        })?),
    };
    let price: f64 = parse_or(env, "SENTINEL_LLM_PRICE_PER_1K_TOKENS", 0.0)?;
    if !price.is_finite() || price < 0.0 {
        return Err(UserError::new(format!(
            "SENTINEL_LLM_PRICE_PER_1K_TOKENS must be a price in dollars of 0 or more, like 0.002, not `{price}`"
        )));
    }
    Ok(MetricsConfig {
        listen,
        llm_price_per_1k: price,
    })
}

/// The audit log (docs/audit.md).
#[derive(Debug, Clone, Default)]
pub struct AuditConfig {
    /// `SENTINEL_AUDIT_KEY`: the chain's HMAC key. `None`: actions must not run (nothing
    /// could be recorded), and `sentinel audit verify` refuses to start.
    pub key: Option<AuditKey>,
    /// `SENTINEL_AUDIT_CHANNEL`: where the chain head is posted, hourly and after actions.
    pub channel: Option<String>,
}

/// Shortest accepted `SENTINEL_AUDIT_KEY`, in bytes (`openssl rand -hex 16` prints 32):
/// shorter keys could be guessed, and a guessed key lets anyone rebuild the chain.
pub const MIN_AUDIT_KEY_LEN: usize = 32;

fn audit_from_env(env: &dyn Env) -> Result<AuditConfig, UserError> {
    let key = match env.get("SENTINEL_AUDIT_KEY") {
        None => None,
        Some(k) if k.len() < MIN_AUDIT_KEY_LEN => {
            return Err(UserError::new(format!(
                "SENTINEL_AUDIT_KEY is too short ({} bytes): use at least {MIN_AUDIT_KEY_LEN} random characters, e.g. `openssl rand -hex 32`",
                k.len()
            )))
        }
        Some(k) => Some(AuditKey::from_config(&k)),
    };
    Ok(AuditConfig {
        key,
        channel: env
            .get("SENTINEL_AUDIT_CHANNEL")
            .map(|c| c.trim().to_string()),
    })
}

impl AuditConfig {
    /// The key, or a sentence saying how to set it.
    pub fn require_key(&self) -> Result<&AuditKey, UserError> {
        self.key.as_ref().ok_or_else(|| {
            UserError::new(
                "SENTINEL_AUDIT_KEY is not set: the audit log is keyed with it (the same value `sentinel serve` runs with; see docs/audit.md)",
            )
        })
    }
}

/// Alerts in: the webhook server, alert channels and storm control.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// `SENTINEL_WEBHOOK_ADDR`.
    pub listen: SocketAddr,
    /// `SENTINEL_WEBHOOK_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    pub auth: WebhookAuth,
    /// `None` until `SENTINEL_ALERT_CHANNEL` is set.
    pub routes: Option<Routes>,
    pub storm: StormConfig,
    /// `SENTINEL_RUNBOOK_BASE_URL`: runbook sections link to `<base>/<path>#<anchor>`.
    pub runbook_base_url: Option<String>,
}

impl AlertsConfig {
    fn from_env(env: &dyn Env) -> Result<Self, UserError> {
        let listen = env
            .get("SENTINEL_WEBHOOK_ADDR")
            .unwrap_or_else(|| "127.0.0.1:9095".to_string());
        let listen = listen.parse().map_err(|_| {
            UserError::new(format!(
                "SENTINEL_WEBHOOK_ADDR must be host:port like 0.0.0.0:9095, not `{listen}`"
            ))
        })?;
        let source = |name: &str| SourceAuth {
            bearer: env
                .get(&format!("SENTINEL_WEBHOOK_{name}_TOKEN"))
                .map(SecretString::from),
            hmac_secret: env
                .get(&format!("SENTINEL_WEBHOOK_{name}_HMAC_SECRET"))
                .map(SecretString::from),
        };
        let auth = WebhookAuth {
            alertmanager: source("ALERTMANAGER"),
            grafana: source("GRAFANA"),
            generic: source("GENERIC"),
            allow_unauthenticated: parse_or(env, "SENTINEL_WEBHOOK_ALLOW_UNAUTHENTICATED", false)?,
        };
        let routes = match (env.get("SENTINEL_ALERT_CHANNEL"), env.get("SENTINEL_ALERT_ROUTES")) {
            (Some(default), spec) => Some(Routes::parse(spec.as_deref().unwrap_or(""), default.trim())?),
            (None, Some(_)) => {
                return Err(UserError::new(
                    "SENTINEL_ALERT_ROUTES needs SENTINEL_ALERT_CHANNEL too (the channel for alerts no route matches)",
                ))
            }
            (None, None) => None,
        };
        let threshold: u32 = parse_or(env, "SENTINEL_STORM_THRESHOLD", 5)?;
        let window: u64 = parse_or(env, "SENTINEL_STORM_WINDOW_SECS", 60)?;
        if window == 0 {
            return Err(UserError::new(
                "SENTINEL_STORM_WINDOW_SECS must be at least 1",
            ));
        }
        Ok(Self {
            listen,
            max_body_bytes: parse_or(env, "SENTINEL_WEBHOOK_MAX_BODY_BYTES", 1024 * 1024)?,
            auth,
            routes,
            storm: StormConfig {
                threshold,
                window: Duration::from_secs(window),
            },
            runbook_base_url: env.get("SENTINEL_RUNBOOK_BASE_URL"),
        })
    }
}

/// Default Slack Web API base (no trailing slash).
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";

/// How the bot talks to Slack: tokens, API base, Socket Mode connections, watched channels.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// App-level token (`xapp-`), opens Socket Mode connections.
    pub app_token: SecretString,
    /// Bot token (`xoxb-`), for every Web API call.
    pub bot_token: SecretString,
    /// Web API base without trailing slash (the emulator's in tests).
    pub api_url: String,
    /// Socket Mode connections kept open (Slack allows up to 10).
    pub connections: u32,
    /// Channel ids whose plain messages the bot reads (alert channels).
    pub watch_channels: Vec<String>,
    /// Background jobs run at once; the rest wait in the queue (acks never wait).
    pub handler_concurrency: usize,
    /// Timeout of every Web API call.
    pub timeout_secs: u64,
    /// Base URL runbook links point to (`<base>/<path>#<anchor>`); plain paths if unset.
    pub runbook_base_url: Option<String>,
}

/// How structured output is requested from the LLM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructuredMode {
    /// `response_format: json_schema` (strict), downgraded to JSON mode if the server refuses.
    JsonSchema,
    /// `response_format: json_object` with the schema in the prompt.
    JsonObject,
}

/// Any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, LiteLLM, Groq).
#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub base_url: String,
    /// Optional: local servers usually need none.
    pub api_key: Option<SecretString>,
    pub model: String,
    /// Limit for one HTTP call, including a streamed body.
    pub timeout: std::time::Duration,
    /// Attempts per call (429 and 5xx are retried with backoff and jitter).
    pub attempts: u32,
    pub structured: StructuredMode,
    /// Ask for a streamed answer (`stream: true`) and assemble it.
    pub stream: bool,
    /// `max_completion_tokens` per call.
    pub max_output_tokens: u32,
    /// Tokens (prompt + completion) one incident may spend in total.
    pub incident_token_budget: u64,
}

/// Diagnosis settings that apply with or without an LLM.
#[derive(Debug, Clone)]
pub struct DiagnosisConfig {
    /// Label and annotation names whose values are secret (`SENTINEL_REDACT_LABELS`).
    pub redact_labels: Vec<String>,
    /// Where runbook files are browsable, e.g. `https://github.com/acme/runbooks/blob/main/`;
    /// links are `{base}{path}#{anchor}`. Without it, a runbook's first declared URL is used.
    pub runbook_base_url: Option<String>,
    /// Incident diagnoses run at once per replica (`SENTINEL_DIAGNOSIS_WORKERS`).
    pub workers: usize,
    /// The LLM circuit breaker (`SENTINEL_LLM_BREAKER_FAILURES`, `_PROBE_SECS`).
    pub breaker: BreakerConfig,
}

impl Default for DiagnosisConfig {
    fn default() -> Self {
        Self {
            redact_labels: Vec::new(),
            runbook_base_url: None,
            workers: 8,
            breaker: BreakerConfig::default(),
        }
    }
}

fn diagnosis_from_env(env: &dyn Env) -> Result<DiagnosisConfig, UserError> {
    let d = DiagnosisConfig::default();
    let workers: usize = parse_or(env, "SENTINEL_DIAGNOSIS_WORKERS", d.workers)?;
    let failures: u32 = parse_or(env, "SENTINEL_LLM_BREAKER_FAILURES", d.breaker.failures)?;
    let probe: u64 = parse_or(
        env,
        "SENTINEL_LLM_BREAKER_PROBE_SECS",
        d.breaker.probe.as_secs(),
    )?;
    for (key, v) in [
        ("SENTINEL_DIAGNOSIS_WORKERS", workers as u64),
        ("SENTINEL_LLM_BREAKER_FAILURES", u64::from(failures)),
        ("SENTINEL_LLM_BREAKER_PROBE_SECS", probe),
    ] {
        if v == 0 {
            return Err(UserError::new(format!("{key} must be at least 1")));
        }
    }
    Ok(DiagnosisConfig {
        redact_labels: env
            .get("SENTINEL_REDACT_LABELS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        runbook_base_url: env.get("SENTINEL_RUNBOOK_BASE_URL"),
        workers,
        breaker: BreakerConfig {
            failures,
            probe: Duration::from_secs(probe),
        },
    })
}

/// Which embedder turns text into vectors.
#[derive(Debug, Clone)]
pub enum EmbedderConfig {
    /// all-MiniLM-L6-v2 in pure Rust (candle), from a local folder.
    Local { model_dir: PathBuf, threads: usize },
    /// Any OpenAI-compatible `/embeddings` endpoint.
    OpenAi {
        base_url: String,
        api_key: Option<SecretString>,
        model: String,
        dim: usize,
    },
}

impl Config {
    pub fn from_env(env: &dyn Env) -> Result<Self, UserError> {
        let database_url = env.get("DATABASE_URL").map(SecretString::from);
        let embedder = match env.get("SENTINEL_EMBEDDER").as_deref() {
            None | Some("local") => EmbedderConfig::Local {
                model_dir: env
                    .get("SENTINEL_MODEL_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_DIR)),
                threads: parse_or(env, "SENTINEL_EMBED_THREADS", 0)?,
            },
            Some("openai") => EmbedderConfig::OpenAi {
                base_url: env
                    .get("SENTINEL_EMBED_BASE_URL")
                    .or_else(|| env.get("OPENAI_BASE_URL"))
                    .unwrap_or_else(|| "https://api.openai.com/v1".to_string()),
                api_key: env.get("OPENAI_API_KEY").map(SecretString::from),
                model: env
                    .get("SENTINEL_EMBED_MODEL")
                    .unwrap_or_else(|| "text-embedding-3-small".to_string()),
                dim: parse_or(env, "SENTINEL_EMBED_DIM", 1536)?,
            },
            Some(other) => {
                return Err(UserError::new(format!(
                    "SENTINEL_EMBEDDER must be `local` or `openai`, not `{other}`"
                )))
            }
        };
        let shutdown_secs: u64 = parse_or(env, "SENTINEL_SHUTDOWN_SECS", 20)?;
        Ok(Self {
            database_url,
            embedder,
            shutdown_grace: Duration::from_secs(shutdown_secs.max(1)),
            alerts: AlertsConfig::from_env(env)?,
            slack: slack_from_env(env)?,
            llm: llm_from_env(env)?,
            diagnosis: diagnosis_from_env(env)?,
            actions: crate::actions::ActionsConfig::from_env(env)?,
            audit: audit_from_env(env)?,
            metrics: metrics_from_env(env)?,
        })
    }

    /// The Slack settings, or a sentence naming the missing variable.
    pub fn require_slack(&self) -> Result<&SlackConfig, UserError> {
        self.slack.as_ref().ok_or_else(|| {
            UserError::new(
                "SLACK_APP_TOKEN and SLACK_BOT_TOKEN are not set: create a Socket Mode app \
                 (see .env.example) and export both tokens.",
            )
        })
    }

    /// The database URL, or a sentence telling the user how to get one.
    pub fn require_database_url(&self) -> Result<&SecretString, UserError> {
        self.database_url.as_ref().ok_or_else(|| {
            UserError::new(
                "DATABASE_URL is not set. Run `make db` to start a local Postgres with pgvector, \
                 or point DATABASE_URL at your own.",
            )
        })
    }
}

fn slack_from_env(env: &dyn Env) -> Result<Option<SlackConfig>, UserError> {
    let (app, bot) = (env.get("SLACK_APP_TOKEN"), env.get("SLACK_BOT_TOKEN"));
    let (app_token, bot_token) = match (app, bot) {
        (None, None) => return Ok(None),
        (Some(a), Some(b)) => (a, b),
        (None, Some(_)) => {
            return Err(UserError::new(
                "SLACK_APP_TOKEN is not set (the xapp- app-level token with connections:write)",
            ))
        }
        (Some(_), None) => {
            return Err(UserError::new(
                "SLACK_BOT_TOKEN is not set (the xoxb- bot token)",
            ))
        }
    };
    let connections: u32 = parse_or(env, "SENTINEL_SLACK_CONNECTIONS", 2)?;
    if !(1..=10).contains(&connections) {
        return Err(UserError::new(format!(
            "SENTINEL_SLACK_CONNECTIONS must be between 1 and 10 (Slack's limit), not {connections}"
        )));
    }
    Ok(Some(SlackConfig {
        app_token: SecretString::from(app_token),
        bot_token: SecretString::from(bot_token),
        api_url: env
            .get("SLACK_API_URL")
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_SLACK_API_URL.to_string()),
        connections,
        watch_channels: env
            .get("SENTINEL_WATCH_CHANNELS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        handler_concurrency: parse_or(env, "SENTINEL_HANDLER_CONCURRENCY", 64usize)?.max(1),
        timeout_secs: parse_or(env, "SENTINEL_SLACK_TIMEOUT_SECS", 10u64)?.max(1),
        runbook_base_url: env.get("SENTINEL_RUNBOOK_BASE_URL"),
    }))
}

/// The LLM is configured when a base URL or an API key is set, unless `SENTINEL_LLM=off`.
fn llm_from_env(env: &dyn Env) -> Result<Option<LlmConfig>, UserError> {
    if env.get("SENTINEL_LLM").as_deref() == Some("off") {
        return Ok(None);
    }
    let base_url = env
        .get("SENTINEL_LLM_BASE_URL")
        .or_else(|| env.get("OPENAI_BASE_URL"));
    let api_key = env.get("OPENAI_API_KEY").map(SecretString::from);
    if base_url.is_none() && api_key.is_none() {
        return Ok(None);
    }
    let structured = match env.get("SENTINEL_LLM_STRUCTURED").as_deref() {
        None | Some("json_schema") => StructuredMode::JsonSchema,
        Some("json_object") | Some("json") => StructuredMode::JsonObject,
        Some(other) => {
            return Err(UserError::new(format!(
                "SENTINEL_LLM_STRUCTURED must be `json_schema` or `json_object`, not `{other}`"
            )))
        }
    };
    let timeout_ms: u64 = parse_or(env, "SENTINEL_LLM_TIMEOUT_MS", 20_000)?;
    if timeout_ms == 0 {
        return Err(UserError::new("SENTINEL_LLM_TIMEOUT_MS must be above 0"));
    }
    Ok(Some(LlmConfig {
        base_url: base_url.unwrap_or_else(|| "https://api.openai.com/v1".to_string()),
        api_key,
        model: env
            .get("SENTINEL_LLM_MODEL")
            .unwrap_or_else(|| "gpt-4o-mini".to_string()),
        timeout: std::time::Duration::from_millis(timeout_ms),
        attempts: parse_or(env, "SENTINEL_LLM_ATTEMPTS", 3)?,
        structured,
        stream: parse_or(env, "SENTINEL_LLM_STREAM", false)?,
        max_output_tokens: parse_or(env, "SENTINEL_LLM_MAX_OUTPUT_TOKENS", 1200)?,
        incident_token_budget: parse_or(env, "SENTINEL_LLM_INCIDENT_TOKEN_BUDGET", 60_000)?,
    }))
}

pub(crate) fn parse_or<T: std::str::FromStr>(
    env: &dyn Env,
    key: &str,
    default: T,
) -> Result<T, UserError> {
    match env.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| UserError::new(format!("{key} has an invalid value `{v}`"))),
    }
}

/// An environment of `pairs`, for tests of configuration parsing.
#[cfg(test)]
pub(crate) fn test_env(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::test_env as env;
    use super::*;

    #[test]
    fn defaults_to_local_embedder() {
        let c = Config::from_env(&env(&[])).unwrap();
        assert!(matches!(c.embedder, EmbedderConfig::Local { .. }));
        assert!(c.require_database_url().is_err());
    }

    #[test]
    fn openai_embedder_with_dimension() {
        let c = Config::from_env(&env(&[
            ("SENTINEL_EMBEDDER", "openai"),
            ("SENTINEL_EMBED_DIM", "768"),
        ]))
        .unwrap();
        match c.embedder {
            EmbedderConfig::OpenAi { dim, .. } => assert_eq!(dim, 768),
            _ => panic!("expected openai"),
        }
    }

    #[test]
    fn alerts_config_defaults_and_values() {
        let c = Config::from_env(&env(&[])).unwrap().alerts;
        assert_eq!(c.listen.to_string(), "127.0.0.1:9095");
        assert_eq!(c.max_body_bytes, 1024 * 1024);
        assert!(c.routes.is_none());
        assert!(!c.auth.alertmanager.is_configured() && !c.auth.allow_unauthenticated);
        let c = Config::from_env(&env(&[
            ("SENTINEL_WEBHOOK_ADDR", "0.0.0.0:8088"),
            ("SENTINEL_WEBHOOK_ALERTMANAGER_TOKEN", "t"),
            ("SENTINEL_WEBHOOK_GRAFANA_HMAC_SECRET", "k"),
            ("SENTINEL_ALERT_CHANNEL", "C0ALL"),
            ("SENTINEL_ALERT_ROUTES", "team=db -> C0DB"),
            ("SENTINEL_STORM_THRESHOLD", "10"),
        ]))
        .unwrap()
        .alerts;
        assert_eq!(c.listen.port(), 8088);
        assert!(c.auth.alertmanager.bearer.is_some() && c.auth.grafana.hmac_secret.is_some());
        assert_eq!(c.storm.threshold, 10);
        let r = c.routes.as_ref().unwrap();
        assert_eq!(r.default_channel, "C0ALL");
        assert_eq!(r.routes.len(), 1);
        // Secrets never print.
        assert!(!format!("{c:?}").contains("\"t\""));
    }

    #[test]
    fn alerts_config_errors() {
        let e = Config::from_env(&env(&[("SENTINEL_WEBHOOK_ADDR", "nowhere")])).unwrap_err();
        assert!(e.0.contains("SENTINEL_WEBHOOK_ADDR"));
        let e = Config::from_env(&env(&[("SENTINEL_ALERT_ROUTES", "a=b -> C1")])).unwrap_err();
        assert!(e.0.contains("SENTINEL_ALERT_CHANNEL"));
        let e = Config::from_env(&env(&[("SENTINEL_STORM_WINDOW_SECS", "0")])).unwrap_err();
        assert!(e.0.contains("at least 1"));
    }

    #[test]
    fn llm_is_off_without_url_or_key() {
        let c = Config::from_env(&env(&[])).unwrap();
        assert!(c.llm.is_none());
        let c = Config::from_env(&env(&[
            ("SENTINEL_LLM_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("SENTINEL_LLM_MODEL", "llama3.1"),
            ("SENTINEL_LLM_STRUCTURED", "json_object"),
            ("SENTINEL_REDACT_LABELS", "customer, tenant_token"),
        ]))
        .unwrap();
        let llm = c.llm.unwrap();
        assert!(llm.api_key.is_none());
        assert_eq!(llm.model, "llama3.1");
        assert_eq!(llm.structured, StructuredMode::JsonObject);
        assert_eq!(c.diagnosis.redact_labels, ["customer", "tenant_token"]);
        let c = Config::from_env(&env(&[
            ("OPENAI_API_KEY", "sk-test"),
            ("SENTINEL_LLM", "off"),
        ]))
        .unwrap();
        assert!(c.llm.is_none());
        let e = Config::from_env(&env(&[
            ("OPENAI_API_KEY", "sk-test"),
            ("SENTINEL_LLM_STRUCTURED", "xml"),
        ]))
        .unwrap_err();
        assert!(e.0.contains("xml"));
    }

    #[test]
    fn diagnosis_pool_and_breaker_settings() {
        let c = Config::from_env(&env(&[])).unwrap().diagnosis;
        assert_eq!(c.workers, 8);
        assert_eq!(c.breaker, BreakerConfig::default());
        assert_eq!(c.breaker.failures, 3);
        assert_eq!(c.breaker.probe, Duration::from_secs(30));
        let c = Config::from_env(&env(&[
            ("SENTINEL_DIAGNOSIS_WORKERS", "16"),
            ("SENTINEL_LLM_BREAKER_FAILURES", "5"),
            ("SENTINEL_LLM_BREAKER_PROBE_SECS", "10"),
        ]))
        .unwrap()
        .diagnosis;
        assert_eq!(c.workers, 16);
        assert_eq!(c.breaker.failures, 5);
        assert_eq!(c.breaker.probe, Duration::from_secs(10));
        let e = Config::from_env(&env(&[("SENTINEL_DIAGNOSIS_WORKERS", "0")])).unwrap_err();
        assert!(
            e.0.contains("SENTINEL_DIAGNOSIS_WORKERS must be at least 1"),
            "{}",
            e.0
        );
    }

    #[test]
    fn audit_key_is_optional_long_and_never_printed() {
        let c = Config::from_env(&env(&[])).unwrap().audit;
        assert!(c.key.is_none() && c.channel.is_none());
        assert!(c
            .require_key()
            .unwrap_err()
            .0
            .contains("SENTINEL_AUDIT_KEY"));
        let e = Config::from_env(&env(&[("SENTINEL_AUDIT_KEY", "short")])).unwrap_err();
        assert!(e.0.contains("too short"), "{}", e.0);
        let key = "0123456789abcdef0123456789abcdef";
        let c = Config::from_env(&env(&[
            ("SENTINEL_AUDIT_KEY", key),
            ("SENTINEL_AUDIT_CHANNEL", " C0AUDIT "),
        ]))
        .unwrap();
        assert!(c.audit.require_key().is_ok());
        assert_eq!(c.audit.channel.as_deref(), Some("C0AUDIT"));
        assert!(!format!("{c:?}").contains(key));
    }

    #[test]
    fn rejects_unknown_embedder_and_bad_numbers() {
        let e = Config::from_env(&env(&[("SENTINEL_EMBEDDER", "word2vec")])).unwrap_err();
        assert!(e.0.contains("word2vec"));
        let e = Config::from_env(&env(&[("SENTINEL_EMBED_THREADS", "many")])).unwrap_err();
        assert!(e.0.contains("SENTINEL_EMBED_THREADS"));
    }

    #[test]
    fn slack_needs_both_tokens_and_defaults_the_rest() {
        assert!(Config::from_env(&env(&[])).unwrap().slack.is_none());
        let e = Config::from_env(&env(&[("SLACK_BOT_TOKEN", "xoxb-1")])).unwrap_err();
        assert!(e.0.contains("SLACK_APP_TOKEN"));
        let c = Config::from_env(&env(&[
            ("SLACK_BOT_TOKEN", "xoxb-1"),
            ("SLACK_APP_TOKEN", "xapp-1"),
            ("SLACK_API_URL", "http://127.0.0.1:9/api/"),
            ("SENTINEL_WATCH_CHANNELS", "C1, C2,"),
        ]))
        .unwrap();
        let s = c.require_slack().unwrap();
        assert_eq!(s.api_url, "http://127.0.0.1:9/api");
        assert_eq!(s.watch_channels, vec!["C1", "C2"]);
        assert_eq!(s.connections, 2);
        let e = Config::from_env(&env(&[
            ("SLACK_BOT_TOKEN", "xoxb-1"),
            ("SLACK_APP_TOKEN", "xapp-1"),
            ("SENTINEL_SLACK_CONNECTIONS", "11"),
        ]))
        .unwrap_err();
        assert!(e.0.contains("between 1 and 10"));
    }

    #[test]
    fn metrics_config_defaults_values_and_errors() {
        let c = Config::from_env(&env(&[])).unwrap().metrics;
        assert!(c.listen.is_none());
        assert_eq!(c.llm_price_per_1k, 0.0);
        let c = Config::from_env(&env(&[
            ("SENTINEL_METRICS_ADDR", "0.0.0.0:9464"),
            ("SENTINEL_LLM_PRICE_PER_1K_TOKENS", "0.002"),
        ]))
        .unwrap()
        .metrics;
        assert_eq!(c.listen.map(|a| a.port()), Some(9464));
        assert_eq!(c.llm_price_per_1k, 0.002);
        let e = Config::from_env(&env(&[("SENTINEL_METRICS_ADDR", "9464")])).unwrap_err();
        assert!(
            e.0.contains("SENTINEL_METRICS_ADDR must be host:port"),
            "{}",
            e.0
        );
        let e = Config::from_env(&env(&[("SENTINEL_LLM_PRICE_PER_1K_TOKENS", "-1")])).unwrap_err();
        assert!(e.0.contains("0 or more"), "{}", e.0);
        let e =
            Config::from_env(&env(&[("SENTINEL_LLM_PRICE_PER_1K_TOKENS", "cheap")])).unwrap_err();
        assert!(e.0.contains("SENTINEL_LLM_PRICE_PER_1K_TOKENS"), "{}", e.0);
    }
}
