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
    fn rejects_unknown_embedder_and_bad_numbers() {
        let e = Config::from_env(&env(&[("SENTINEL_EMBEDDER", "word2vec")])).unwrap_err();
        assert!(e.0.contains("word2vec"));
        let e = Config::from_env(&env(&[("SENTINEL_EMBED_THREADS", "many")])).unwrap_err();
        assert!(e.0.contains("SENTINEL_EMBED_THREADS"));
    }
}
