//! all-MiniLM-L6-v2 in pure Rust: our packed BERT forward (`bert.rs`, weights read with
//! candle) plus the `tokenizers` crate.
//!
//! Matches sentence-transformers: truncate at 256 word pieces, mean-pool the last hidden
//! state over the attention mask, L2-normalise. Inputs are sorted by length and batched so
//! padding stays small.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use tokenizers::{Tokenizer, TruncationParams};

use super::bert::{Bert, Config as BertConfig};
use super::{l2_normalize, Embedder};
use crate::error::UserError;

/// sentence-transformers' `max_seq_length` for this model.
pub const MAX_TOKENS: usize = 256;
/// Batches of up to this many tokens (all sequences together) multiply against f16 copies
/// of the weights; longer ones against the f32 weights (see `halfmat`).
pub const HALF_PRECISION_MAX_ROWS: usize = super::halfmat::MAX_ROWS;
/// A batch holds at most this many sequences and this many tokens: packed sequences make
/// one GEMM per layer, and bigger GEMMs run closer to the CPU's peak.
const BATCH: usize = 128;
const BATCH_TOKENS: usize = 8192;

pub struct LocalEmbedder {
    inner: Arc<Inner>,
    name: String,
}

struct Inner {
    model: Bert,
    /// Truncates at `MAX_TOKENS`, as the model reads.
    tokenizer: Tokenizer,
    /// No truncation: counts every token, for chunking.
    counter: Tokenizer,
    dim: usize,
    /// The encoder's GEMMs and kernels run here, sized once at load.
    pool: rayon::ThreadPool,
}

impl LocalEmbedder {
    /// Loads the model from a folder holding `model.safetensors`, `tokenizer.json`, `config.json`.
    /// `threads`: the encoder's threads; 0 picks [`default_threads`].
    pub fn load(dir: &Path, threads: usize) -> anyhow::Result<Self> {
        let file = |name: &str| -> anyhow::Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(UserError::new(format!(
                    "embedding model not found: {} is missing (run `make model`, or set SENTINEL_MODEL_DIR)",
                    p.display()
                ))
                .into())
            }
        };
        let threads = if threads > 0 {
            threads
        } else {
            default_threads()
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("sentinel-embed-{i}"))
            .build()
            .context("Failed to start the embedding threads")?;
        let config: BertConfig = serde_json::from_str(
            &std::fs::read_to_string(file("config.json")?).context("Failed to read config.json")?,
        )
        .context("Failed to parse config.json")?;
        let dim = config.hidden_size;
        let mut tokenizer = Tokenizer::from_file(file("tokenizer.json")?)
            .map_err(|e| anyhow::anyhow!("Failed to load tokenizer.json: {e}"))?;
        tokenizer.with_padding(None);
        let mut counter = tokenizer.clone();
        counter
            .with_truncation(None)
            .map_err(|e| anyhow::anyhow!("Failed to configure the tokenizer: {e}"))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("Failed to configure truncation: {e}"))?;
        let weights = file("model.safetensors")?;
        // Safety note: memory-mapping is done inside candle; the file must not change while mapped.
        let vb = mmaped(&weights)?;
        let model = Bert::load(vb, &config).context("Failed to load BERT weights")?;
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                counter,
                dim,
                pool,
            }),
            name: "local/all-MiniLM-L6-v2".to_string(),
        })
    }

    /// Synchronous embedding, for benchmarks and blocking contexts.
    pub fn embed_blocking(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        self.inner.embed(texts)
    }
}

#[expect(
    unsafe_code,
    reason = "candle only offers memory-mapped safetensors loading as unsafe"
)]
fn mmaped(path: &Path) -> anyhow::Result<VarBuilder<'static>> {
    // SAFETY: the weights file is read-only model data that nothing rewrites while we run.
    unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, &Device::Cpu) }
        .context("Failed to map model.safetensors")
}

/// Physical cores within the CPUs this process may use (cgroup quotas included):
/// hyper-threads share one core's vector units, so more threads only add contention.
pub fn default_threads() -> usize {
    let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
    num_cpus::get_physical().clamp(1, allowed)
}

impl Inner {
    fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        self.pool.install(|| self.embed_here(texts))
    }

    fn embed_here(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| anyhow::anyhow!("tokenizer failed: {e}"))?;
        // Similar lengths together keep per-batch work even; packing means no padding.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < order.len() && end - start < BATCH {
                let n = encodings[order[end]].len();
                if end > start && tokens + n > BATCH_TOKENS {
                    break;
                }
                tokens += n;
                end += 1;
            }
            let batch = &order[start..end];
            let seqs: Vec<&[u32]> = batch.iter().map(|&i| encodings[i].get_ids()).collect();
            for (mut v, &i) in self.model.pooled(&seqs)?.into_iter().zip(batch) {
                l2_normalize(&mut v);
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.inner.dim
    }

    fn max_tokens(&self) -> usize {
        MAX_TOKENS
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.inner
            .counter
            .encode(text, false)
            .map(|e| e.len())
            .unwrap_or_else(|_| text.split_whitespace().count() * 2)
    }

    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = self.inner.clone();
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || inner.embed(&texts))
            .await
            .context("embedding task failed")?
    }
}
