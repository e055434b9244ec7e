//! Text embedders behind one trait: local all-MiniLM-L6-v2 (pure Rust) or an OpenAI-compatible API.

// The local model's forward pass and its kernels: private, reached through `LocalEmbedder`.
mod bert;
mod halfmat;
mod kernels;
pub mod local;
mod matmul;
pub mod openai;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::EmbedderConfig;

/// Turns texts into unit-length vectors. Implementations batch internally.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// The model's identity as recorded in `embedding_models` (vectors of different
    /// models are never compared).
    fn model_name(&self) -> &str;
    fn dim(&self) -> usize;
    /// The longest input the model reads, in its tokens, special tokens included.
    fn max_tokens(&self) -> usize;
    /// Tokens in `text` as the model counts them, without special tokens.
    fn count_tokens(&self, text: &str) -> usize;
    /// One vector per text, in order, L2-normalised.
    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>>;

    async fn embed_one(&self, text: &str) -> anyhow::Result<Vec<f32>> {
        let mut v = self.embed(&[text.to_string()]).await?;
        v.pop()
            .ok_or_else(|| anyhow::anyhow!("embedder returned no vector"))
    }
}

/// Builds the configured embedder.
pub async fn from_config(cfg: &EmbedderConfig) -> anyhow::Result<Arc<dyn Embedder>> {
    Ok(match cfg {
        EmbedderConfig::Local { model_dir, threads } => {
            Arc::new(local::LocalEmbedder::load(model_dir, *threads)?)
        }
        EmbedderConfig::OpenAi {
            base_url,
            api_key,
            model,
            dim,
        } => Arc::new(openai::OpenAiEmbedder::new(
            base_url,
            api_key.clone(),
            model,
            *dim,
        )),
    })
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_compares() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!((cosine(&v, &[6.0, 8.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
