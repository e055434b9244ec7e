//! A BERT encoder for sentence embeddings on plain f32 buffers, packed without padding.
//!
//! The sequences of a batch are packed into one `[tokens, hidden]` matrix: every linear
//! layer is a single GEMM (query, key and value fused into one), no work is spent on
//! padding, and attention runs per sequence on exactly its own tokens, reading each head's
//! columns in place through strides (no mask, no transposed copies). Biases and residuals
//! are written into a GEMM's output before it accumulates, so a layer allocates nothing
//! and copies nothing. candle only loads the weights.

use anyhow::Context;
use candle_core::Tensor;
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::Deserialize;

use super::halfmat::{self, HalfWeights};
use super::kernels::{gelu_in_place, layer_norm_rows, softmax_rows};
use super::matmul::{gemm, MatMut, MatRef};

/// The fields of a BERT `config.json` this encoder reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    /// Only GELU (erf form) is implemented, as BERT and MiniLM use.
    #[serde(default = "gelu")]
    pub hidden_act: String,
}

fn gelu() -> String {
    "gelu".to_string()
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// A linear layer: `weight` is `[in, out]` row-major (HF stores `[out, in]`).
struct Linear {
    weight: Vec<f32>,
    /// f16 copy for products of few rows (one query), where reading the weights is the cost.
    half: Option<HalfWeights>,
    bias: Vec<f32>,
    inp: usize,
    out: usize,
}

struct Layer {
    /// Query, key and value side by side: `[hidden, 3 * hidden]`.
    qkv: Linear,
    out: Linear,
    norm1: Norm,
    up: Linear,
    down: Linear,
    norm2: Norm,
}

pub struct Bert {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type0: Vec<f32>,
    emb_norm: Norm,
    layers: Vec<Layer>,
    vocab: usize,
    max_positions: usize,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    eps: f32,
}

fn values(t: &Tensor) -> anyhow::Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

fn linear(vbs: &[VarBuilder], inp: usize, out: usize) -> anyhow::Result<Linear> {
    let mut ws = Vec::new();
    let mut bias = Vec::new();
    for vb in vbs {
        ws.push(vb.get((out, inp), "weight")?.t()?);
        bias.extend(values(&vb.get(out, "bias")?)?);
    }
    let weight = values(&Tensor::cat(&ws, 1)?.contiguous()?)?;
    let out = out * vbs.len();
    Ok(Linear {
        half: HalfWeights::pack(&weight, inp, out),
        weight,
        bias,
        inp,
        out,
    })
}

fn norm(vb: &VarBuilder, h: usize) -> anyhow::Result<Norm> {
    Ok(Norm {
        gamma: values(&vb.get(h, "weight")?)?,
        beta: values(&vb.get(h, "bias")?)?,
    })
}

impl Linear {
    /// `dst = x * weight + bias` (`accumulate`: `dst += x * weight + bias`) for `rows` rows.
    fn apply(&self, x: &[f32], dst: &mut [f32], rows: usize, accumulate: bool, threads: usize) {
        let dst = &mut dst[..rows * self.out];
        for row in dst.chunks_mut(self.out) {
            if accumulate {
                row.iter_mut().zip(&self.bias).for_each(|(d, b)| *d += b);
            } else {
                row.copy_from_slice(&self.bias);
            }
        }
        if let Some(half) = self.half.as_ref().filter(|_| rows <= halfmat::MAX_ROWS) {
            return half.apply_accumulate(x, rows, dst);
        }
        gemm(
            MatMut::rows(dst, rows, self.out),
            MatRef::rows(&x[..rows * self.inp], rows, self.inp),
            MatRef::rows(&self.weight, self.inp, self.out),
            1.0,
            true,
            threads,
        );
    }
}

/// Work buffers for one packed batch of `tokens` tokens.
struct Buffers {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    up: Vec<f32>,
}

impl Bert {
    pub fn load(vb: VarBuilder, cfg: &Config) -> anyhow::Result<Self> {
        anyhow::ensure!(
            cfg.hidden_act == "gelu",
            "unsupported hidden_act `{}` (only gelu)",
            cfg.hidden_act
        );
        anyhow::ensure!(
            cfg.num_attention_heads > 0 && cfg.hidden_size.is_multiple_of(cfg.num_attention_heads),
            "hidden_size {} is not a multiple of num_attention_heads {}",
            cfg.hidden_size,
            cfg.num_attention_heads
        );
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let h = cfg.hidden_size;
        let e = vb.pp("embeddings");
        let token_types = e.get((cfg.type_vocab_size, h), "token_type_embeddings.weight")?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            let qkv = [a.pp("self.query"), a.pp("self.key"), a.pp("self.value")];
            layers.push(Layer {
                qkv: linear(&qkv, h, h)?,
                out: linear(&[a.pp("output.dense")], h, h)?,
                norm1: norm(&a.pp("output.LayerNorm"), h)?,
                up: linear(&[l.pp("intermediate.dense")], h, cfg.intermediate_size)?,
                down: linear(&[l.pp("output.dense")], cfg.intermediate_size, h)?,
                norm2: norm(&l.pp("output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            word: values(&e.get((cfg.vocab_size, h), "word_embeddings.weight")?)?,
            position: values(&e.get(
                (cfg.max_position_embeddings, h),
                "position_embeddings.weight",
            )?)?,
            token_type0: values(&token_types.get(0)?)?,
            emb_norm: norm(&e.pp("LayerNorm"), h)?,
            layers,
            vocab: cfg.vocab_size,
            max_positions: cfg.max_position_embeddings,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
            hidden: h,
            eps: cfg.layer_norm_eps as f32,
        })
    }

    /// Mean-pooled last hidden state of each sequence (token ids with special tokens), on
    /// the current rayon pool.
    /// Not normalised.
    pub fn pooled(&self, seqs: &[&[u32]]) -> anyhow::Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        // An empty sequence reads as one padding token, so it still gets a vector.
        let seqs: Vec<&[u32]> = seqs
            .iter()
            .map(|s| if s.is_empty() { &[0u32][..] } else { *s })
            .collect();
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let tokens: usize = lens.iter().sum();
        let longest = lens.iter().copied().max().unwrap_or(0);
        anyhow::ensure!(
            longest <= self.max_positions,
            "a sequence of {longest} tokens exceeds the model's {} positions",
            self.max_positions
        );
        let threads = rayon::current_num_threads();
        let intermediate = self.layers.first().map_or(0, |l| l.up.out);
        let mut b = Buffers {
            x: vec![0f32; tokens * h],
            qkv: vec![0f32; tokens * 3 * h],
            ctx: vec![0f32; tokens * h],
            up: vec![0f32; tokens * intermediate],
        };
        let mut rows = b.x.chunks_mut(h);
        for s in &seqs {
            for (pos, &id) in s.iter().enumerate() {
                let id = id as usize;
                anyhow::ensure!(id < self.vocab, "token id {id} is outside the vocabulary");
                let row = rows.next().context("token rows miscounted")?;
                let word = &self.word[id * h..(id + 1) * h];
                let position = &self.position[pos * h..(pos + 1) * h];
                for (i, v) in row.iter_mut().enumerate() {
                    *v = word[i] + position[i] + self.token_type0[i];
                }
            }
        }
        layer_norm_rows(
            &mut b.x,
            &self.emb_norm.gamma,
            &self.emb_norm.beta,
            self.eps,
        );
        for l in &self.layers {
            self.layer(l, &mut b, &lens, threads);
        }
        let mut out = Vec::with_capacity(lens.len());
        let mut offset = 0;
        for &n in &lens {
            let mut mean = vec![0f32; h];
            for row in b.x[offset * h..(offset + n) * h].chunks(h) {
                mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
            }
            mean.iter_mut().for_each(|m| *m /= n as f32);
            out.push(mean);
            offset += n;
        }
        Ok(out)
    }

    fn layer(&self, l: &Layer, b: &mut Buffers, lens: &[usize], threads: usize) {
        let tokens = b.x.len() / self.hidden;
        l.qkv.apply(&b.x, &mut b.qkv, tokens, false, threads);
        self.attention(&b.qkv, &mut b.ctx, lens);
        // x = norm(x + ctx * out_w + out_b)
        l.out.apply(&b.ctx, &mut b.x, tokens, true, threads);
        layer_norm_rows(&mut b.x, &l.norm1.gamma, &l.norm1.beta, self.eps);
        // x = norm(x + gelu(x * up_w + up_b) * down_w + down_b)
        l.up.apply(&b.x, &mut b.up, tokens, false, threads);
        gelu_in_place(&mut b.up[..tokens * l.up.out]);
        l.down.apply(&b.up, &mut b.x, tokens, true, threads);
        layer_norm_rows(&mut b.x, &l.norm2.gamma, &l.norm2.beta, self.eps);
    }

    /// Scaled dot-product attention of every sequence over its own tokens. Each
    /// (sequence, head) pair is one task on rayon's pool, so one query's twelve heads use
    /// every core; a task's GEMMs are small and stay on its thread, and its `n x head_dim`
    /// result is copied into the head's columns afterwards.
    fn attention(&self, qkv: &[f32], ctx: &mut [f32], lens: &[usize]) {
        let (h, d) = (self.hidden, self.head_dim);
        let scale = 1.0 / (d as f32).sqrt();
        let mut tasks = Vec::with_capacity(lens.len() * self.heads);
        let mut offset = 0;
        for &n in lens {
            tasks.extend((0..self.heads).map(|head| (offset, n, head * d)));
            offset += n;
        }
        let results: Vec<Vec<f32>> = tasks
            .par_iter()
            .map(|&(offset, n, col)| {
                let s = &qkv[offset * 3 * h..(offset + n) * 3 * h];
                let mut scores = vec![0f32; n * n];
                let q = MatRef::new(&s[col..], n, d, 3 * h, 1);
                let kt = MatRef::new(&s[h + col..], d, n, 1, 3 * h);
                let v = MatRef::new(&s[2 * h + col..], n, d, 3 * h, 1);
                gemm(MatMut::rows(&mut scores, n, n), q, kt, scale, false, 1);
                softmax_rows(&mut scores, n);
                let mut out = vec![0f32; n * d];
                gemm(
                    MatMut::rows(&mut out, n, d),
                    MatRef::rows(&scores, n, n),
                    v,
                    1.0,
                    false,
                    1,
                );
                out
            })
            .collect();
        for (&(offset, _, col), out) in tasks.iter().zip(&results) {
            for (i, row) in out.chunks_exact(d).enumerate() {
                let at = (offset + i) * h + col;
                ctx[at..at + d].copy_from_slice(row);
            }
        }
    }
}
