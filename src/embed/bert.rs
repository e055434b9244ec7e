//! A BERT encoder for sentence embeddings on candle tensors, packed without padding.
//!
//! candle's `BertModel` pads every batch to its longest input and runs attention over
//! `[batch * heads]` tiny matrices. Here the sequences of a batch are packed into one
//! `[tokens, hidden]` matrix: every linear layer is a single large GEMM (query, key and
//! value fused into one), no work is spent on padding, and attention runs per sequence
//! on exactly its own tokens, so no attention mask is needed.

use candle_core::{Result, Tensor, D};
use candle_nn::ops::layer_norm;

use super::kernels::{gelu_erf, softmax_last_dim};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::Deserialize;

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
    gamma: Tensor,
    beta: Tensor,
}

struct Layer {
    /// `[hidden, 3 * hidden]`: query, key and value weights side by side, pre-transposed.
    qkv_w: Tensor,
    qkv_b: Tensor,
    out_w: Tensor,
    out_b: Tensor,
    norm1: Norm,
    up_w: Tensor,
    up_b: Tensor,
    down_w: Tensor,
    down_b: Tensor,
    norm2: Norm,
}

pub struct Bert {
    word: Tensor,
    position: Tensor,
    token_type0: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    eps: f32,
}

/// HF linear weights are `[out, in]`; we multiply `x [tokens, in]` by `[in, out]`.
fn linear_t(vb: &VarBuilder, inp: usize, out: usize) -> Result<(Tensor, Tensor)> {
    let w = vb.get((out, inp), "weight")?.t()?.contiguous()?;
    let b = vb.get(out, "bias")?;
    Ok((w, b))
}

fn norm(vb: &VarBuilder, h: usize) -> Result<Norm> {
    Ok(Norm {
        gamma: vb.get(h, "weight")?,
        beta: vb.get(h, "bias")?,
    })
}

impl Bert {
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        if cfg.hidden_act != "gelu" {
            candle_core::bail!("unsupported hidden_act `{}` (only gelu)", cfg.hidden_act);
        }
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
            let (qw, qb) = linear_t(&a.pp("self.query"), h, h)?;
            let (kw, kb) = linear_t(&a.pp("self.key"), h, h)?;
            let (vw, vbias) = linear_t(&a.pp("self.value"), h, h)?;
            let (out_w, out_b) = linear_t(&a.pp("output.dense"), h, h)?;
            let (up_w, up_b) = linear_t(&l.pp("intermediate.dense"), h, cfg.intermediate_size)?;
            let (down_w, down_b) = linear_t(&l.pp("output.dense"), cfg.intermediate_size, h)?;
            layers.push(Layer {
                qkv_w: Tensor::cat(&[&qw, &kw, &vw], 1)?.contiguous()?,
                qkv_b: Tensor::cat(&[&qb, &kb, &vbias], 0)?,
                out_w,
                out_b,
                norm1: norm(&a.pp("output.LayerNorm"), h)?,
                up_w,
                up_b,
                down_w,
                down_b,
                norm2: norm(&l.pp("output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            word: e.get((cfg.vocab_size, h), "word_embeddings.weight")?,
            position: e.get(
                (cfg.max_position_embeddings, h),
                "position_embeddings.weight",
            )?,
            token_type0: token_types.get(0)?,
            emb_norm: norm(&e.pp("LayerNorm"), h)?,
            layers,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
            hidden: h,
            eps: cfg.layer_norm_eps as f32,
        })
    }

    fn norm(&self, x: &Tensor, n: &Norm) -> Result<Tensor> {
        layer_norm(x, &n.gamma, &n.beta, self.eps)
    }

    /// Mean-pooled last hidden state of each sequence (token ids with special tokens).
    /// Not normalised.
    pub fn pooled(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let device = self.word.device();
        let lens: Vec<usize> = seqs.iter().map(|s| s.len().max(1)).collect();
        let mut ids = Vec::with_capacity(lens.iter().sum());
        let mut pos = Vec::with_capacity(ids.capacity());
        for s in seqs {
            if s.is_empty() {
                ids.push(0);
                pos.push(0);
            }
            ids.extend_from_slice(s);
            pos.extend(0..s.len() as u32);
        }
        let ids = Tensor::new(ids.as_slice(), device)?;
        let pos = Tensor::new(pos.as_slice(), device)?;
        let x = (self.word.index_select(&ids, 0)? + self.position.index_select(&pos, 0)?)?
            .broadcast_add(&self.token_type0)?;
        let mut x = self.norm(&x, &self.emb_norm)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let offsets: Vec<usize> = lens
            .iter()
            .scan(0, |acc, &n| {
                let o = *acc;
                *acc += n;
                Some(o)
            })
            .collect();
        for l in &self.layers {
            let qkv = x.matmul(&l.qkv_w)?.broadcast_add(&l.qkv_b)?;
            // Attention is per sequence and its matrices are small: run sequences on
            // rayon's pool (the large GEMMs above and below parallelise on their own).
            let ctx = offsets
                .par_iter()
                .zip(lens.par_iter())
                .map(|(&offset, &n)| -> Result<Tensor> {
                    let s = qkv.narrow(0, offset, n)?;
                    let split = |i: usize| -> Result<Tensor> {
                        s.narrow(1, i * self.hidden, self.hidden)?
                            .reshape((n, self.heads, self.head_dim))?
                            .transpose(0, 1)?
                            .contiguous()
                    };
                    let q = (split(0)? * scale)?;
                    let k = split(1)?;
                    let v = split(2)?;
                    let p = softmax_last_dim(&q.matmul(&k.transpose(1, 2)?)?)?;
                    p.matmul(&v)?.transpose(0, 1)?.reshape((n, self.hidden))
                })
                .collect::<Result<Vec<_>>>()?;
            let ctx = Tensor::cat(&ctx, 0)?;
            let a = (ctx.matmul(&l.out_w)?.broadcast_add(&l.out_b)? + &x)?;
            x = self.norm(&a, &l.norm1)?;
            let up = x.matmul(&l.up_w)?.broadcast_add(&l.up_b)?;
            let up = gelu_erf(&up)?;
            let down = (up.matmul(&l.down_w)?.broadcast_add(&l.down_b)? + &x)?;
            x = self.norm(&down, &l.norm2)?;
        }
        let mut out = Vec::with_capacity(lens.len());
        let mut offset = 0;
        for &n in &lens {
            out.push(x.narrow(0, offset, n)?.mean(D::Minus2)?.to_vec1::<f32>()?);
            offset += n;
        }
        Ok(out)
    }
}
