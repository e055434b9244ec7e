//! The embedders of the tests: the real local model, loaded once for the whole binary,
//! and a hashed bag of words for tests that only need the obvious runbook found.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use sentinel::embed::local::LocalEmbedder;
use sentinel::embed::{l2_normalize, Embedder};

use super::fixtures::repo_path;

/// The model folder `make model` fills (or SENTINEL_MODEL_DIR).
pub fn model_dir() -> PathBuf {
    std::env::var("SENTINEL_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_path(sentinel::config::DEFAULT_MODEL_DIR))
}

/// One local embedder for the whole test binary (loading takes a moment).
pub fn embedder() -> Arc<dyn Embedder> {
    static E: OnceLock<Arc<LocalEmbedder>> = OnceLock::new();
    E.get_or_init(|| {
        Arc::new(LocalEmbedder::load(&model_dir(), 0).expect("run `make model` first"))
    })
    .clone()
}

/// Bag-of-words hashed into 384 dimensions: deterministic, instant, and good enough for
/// the lexical half of hybrid search to find the obvious runbook.
pub struct HashEmbedder;

#[async_trait]
impl Embedder for HashEmbedder {
    fn model_name(&self) -> &str {
        "test-hash-384"
    }
    fn dim(&self) -> usize {
        384
    }
    fn max_tokens(&self) -> usize {
        256
    }
    fn count_tokens(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; 384];
                for w in t
                    .to_lowercase()
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                {
                    let h = w.bytes().fold(1469598103934665603u64, |h, b| {
                        (h ^ b as u64).wrapping_mul(1099511628211)
                    });
                    v[(h % 384) as usize] += 1.0;
                }
                l2_normalize(&mut v);
                v
            })
            .collect())
    }
}
