//! Typed configuration, read once from the environment at start-up and validated.
//!
//! Every variable is documented in `.env.example`. Secrets are wrapped in `SecretString`
//! so they never print; nothing below `main` calls `std::env::var`.

use std::path::PathBuf;

use secrecy::SecretString;

use crate::error::UserError;

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
    /// The LLM that drafts diagnoses; `None` means runbook-only (fallback) diagnoses.
    pub llm: Option<LlmConfig>,
    pub diagnosis: DiagnosisConfig,
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
#[derive(Debug, Clone, Default)]
pub struct DiagnosisConfig {
    /// Label and annotation names whose values are secret (`SENTINEL_REDACT_LABELS`).
    pub redact_labels: Vec<String>,
    /// Where runbook files are browsable, e.g. `https://github.com/acme/runbooks/blob/main/`;
    /// links are `{base}{path}#{anchor}`. Without it, a runbook's first declared URL is used.
    pub runbook_base_url: Option<String>,
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
        Ok(Self {
            database_url,
            embedder,
            llm: llm_from_env(env)?,
            diagnosis: DiagnosisConfig {
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
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

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
    fn rejects_unknown_embedder_and_bad_numbers() {
        let e = Config::from_env(&env(&[("SENTINEL_EMBEDDER", "word2vec")])).unwrap_err();
        assert!(e.0.contains("word2vec"));
        let e = Config::from_env(&env(&[("SENTINEL_EMBED_THREADS", "many")])).unwrap_err();
        assert!(e.0.contains("SENTINEL_EMBED_THREADS"));
    }
}
