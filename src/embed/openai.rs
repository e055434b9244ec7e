//! Embeddings from any OpenAI-compatible `/embeddings` endpoint, through async-openai.
//!
//! Batches inputs, retries 429 and 5xx with backoff, and checks the vectors' dimension.

use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::embeddings::{CreateEmbeddingRequest, EmbeddingInput};
use async_openai::Client;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{l2_normalize, Embedder};
use crate::retry::{Backoff, Verdict};

/// Inputs per request; OpenAI accepts up to 2048.
const BATCH: usize = 128;
/// OpenAI embedding models read 8191 tokens; we chunk far below that for retrieval.
const MAX_TOKENS: usize = 512;

pub struct OpenAiEmbedder {
    client: Client<OpenAIConfig>,
    model: String,
    name: String,
    dim: usize,
    backoff: Backoff,
}

impl OpenAiEmbedder {
    pub fn new(base_url: &str, api_key: Option<SecretString>, model: &str, dim: usize) -> Self {
        let mut cfg = OpenAIConfig::new().with_api_base(base_url.trim_end_matches('/'));
        if let Some(k) = api_key {
            cfg = cfg.with_api_key(k.expose_secret());
        }
        let http = crate::net::client_builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            // Our `Backoff` is the only retry policy (async-openai would retry on its own too).
            client: Client::with_config(cfg)
                .with_http_service(async_openai::middleware::ReqwestService::new(http)),
            model: model.to_string(),
            name: format!("openai/{model}"),
            dim,
            backoff: Backoff::default(),
        }
    }

    async fn embed_batch(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let req = CreateEmbeddingRequest {
            model: self.model.clone(),
            input: EmbeddingInput::StringArray(texts.to_vec()),
            ..Default::default()
        };
        let resp = self
            .backoff
            .run(
                || {
                    let req = req.clone();
                    async move { self.client.embeddings().create(req).await }
                },
                classify,
            )
            .await
            .map_err(|e| anyhow::anyhow!("embedding request failed: {e}"))?;
        let mut data = resp.data;
        data.sort_by_key(|d| d.index);
        if data.len() != texts.len() {
            anyhow::bail!(
                "embedding endpoint returned {} vectors for {} inputs",
                data.len(),
                texts.len()
            );
        }
        data.into_iter()
            .map(|d| {
                if d.embedding.len() != self.dim {
                    anyhow::bail!(
                        "embedding model `{}` returned {} dimensions, configured {} (SENTINEL_EMBED_DIM)",
                        self.model,
                        d.embedding.len(),
                        self.dim
                    );
                }
                let mut v = d.embedding;
                l2_normalize(&mut v);
                Ok(v)
            })
            .collect()
    }
}

fn classify(e: &OpenAIError) -> Verdict {
    match e {
        OpenAIError::ApiError(r)
            if r.status_code.as_u16() == 429 || r.status_code.is_server_error() =>
        {
            Verdict::Retry
        }
        OpenAIError::Reqwest(_) => Verdict::Retry,
        _ => Verdict::Fatal,
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn max_tokens(&self) -> usize {
        MAX_TOKENS
    }

    fn count_tokens(&self, text: &str) -> usize {
        // About four characters per token for English; a safe over-estimate for chunking.
        text.chars().count().div_ceil(3)
    }

    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            out.extend(self.embed_batch(batch).await?);
        }
        Ok(out)
    }
}
