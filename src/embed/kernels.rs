//! Element-wise CPU kernels the encoder spends its non-GEMM time in: GELU (erf form) and
//! the row softmax of attention scores.
//!
//! candle computes both with scalar libm `erff`/`expf`; here they use a polynomial `exp`
//! written so the compiler vectorises it, and the Abramowitz–Stegun erf (absolute error
//! below 1.5e-7), split across rayon's pool. Embeddings stay within 1e-6 of candle's.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel unit: large enough to amortise the fork, small enough to balance.
const CHUNK: usize = 16 * 1024;

/// `e^x` for f32 with relative error about 2e-7; branch-free so loops vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Round to nearest with the 1.5 * 2^23 trick (no SSE4.1 `round` needed).
    const SHIFT: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let k = (x * LOG2E + SHIFT) - SHIFT;
    let r = x - k * LN2_HI - k * LN2_LO;
    // Taylor/minimax on [-ln2/2, ln2/2].
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_623 + r * (0.008_333_452 + r * 0.001_388_305_7)))));
    let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
    p * scale
}

/// erf(x), Abramowitz & Stegun 7.1.26.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let y = 1.0 - (((((A5 * t + A4) * t) + A3) * t + A2) * t + A1) * t * exp(-a * a);
    y.copysign(x)
}

/// GELU, erf form: `0.5 x (1 + erf(x / sqrt 2))`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("kernel input must be contiguous"),
    }
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "sentinel-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous(s, l)?;
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(o, i)| simd::gelu_slice(i, o));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "sentinel-softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous(s, l)?;
        let n = l.dims().last().copied().unwrap_or(1).max(1);
        let rows_per_unit = (CHUNK / n).max(1);
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(rows_per_unit * n)
            .zip(src.par_chunks(rows_per_unit * n))
            .for_each(|(o, i)| {
                for (o, i) in o.chunks_mut(n).zip(i.chunks(n)) {
                    simd::softmax_row(i, o);
                }
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// The slice loops, compiled once per instruction set and picked at run time: the crate is
/// built for baseline x86-64, where these loops would only use 4-wide SSE.
mod simd {
    use super::{exp, gelu};

    /// Lanes for the reductions: independent accumulators the compiler keeps in one register.
    const LANES: usize = 16;

    #[inline(always)]
    fn gelu_generic(src: &[f32], dst: &mut [f32]) {
        for (o, &x) in dst.iter_mut().zip(src) {
            *o = gelu(x);
        }
    }

    #[inline(always)]
    fn softmax_generic(src: &[f32], dst: &mut [f32]) {
        let mut m = [f32::NEG_INFINITY; LANES];
        let mut chunks = src.chunks_exact(LANES);
        for c in &mut chunks {
            for (m, &x) in m.iter_mut().zip(c) {
                *m = if x > *m { x } else { *m };
            }
        }
        let mut max = chunks
            .remainder()
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        for v in m {
            max = max.max(v);
        }
        let mut acc = [0f32; LANES];
        let mut out = dst.chunks_exact_mut(LANES);
        let mut inp = src.chunks_exact(LANES);
        for (o, i) in (&mut out).zip(&mut inp) {
            for ((o, &x), a) in o.iter_mut().zip(i).zip(acc.iter_mut()) {
                let e = exp(x - max);
                *o = e;
                *a += e;
            }
        }
        let mut sum: f32 = acc.iter().sum();
        for (o, &x) in out.into_remainder().iter_mut().zip(inp.remainder()) {
            let e = exp(x - max);
            *o = e;
            sum += e;
        }
        let inv = 1.0 / sum;
        for o in dst.iter_mut() {
            *o *= inv;
        }
    }

    /// `pub fn $name(src, dst)`: runs `$generic` compiled for AVX-512F, else AVX2+FMA, else
    /// the baseline, whichever the CPU has.
    macro_rules! dispatched {
        ($name:ident => $generic:ident) => {
            #[expect(
                unsafe_code,
                reason = "calling a #[target_feature] function after checking the CPU has the feature"
            )]
            pub fn $name(src: &[f32], dst: &mut [f32]) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f")]
                    fn avx512(src: &[f32], dst: &mut [f32]) {
                        $generic(src, dst)
                    }
                    #[target_feature(enable = "avx2,fma")]
                    fn avx2(src: &[f32], dst: &mut [f32]) {
                        $generic(src, dst)
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU supports AVX-512F (checked just above).
                        return unsafe { avx512(src, dst) };
                    }
                    if std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                    {
                        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                        return unsafe { avx2(src, dst) };
                    }
                }
                $generic(src, dst)
            }
        };
    }

    dispatched!(gelu_slice => gelu_generic);
    dispatched!(softmax_row => softmax_generic);
}

/// GELU (erf form) of a contiguous f32 tensor.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&Gelu)
}

/// Softmax over the last dimension of a contiguous f32 tensor.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&SoftmaxLastDim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn exp_matches_std_to_a_few_ulps() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let (a, b) = (exp(x), x.exp());
            assert!(((a - b) / b).abs() < 1e-6, "exp({x}) = {a}, std {b}");
            x += 0.137;
        }
        // Out-of-range inputs saturate instead of producing inf/NaN or garbage.
        assert!(exp(-1000.0) >= 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
    }

    #[test]
    fn gelu_matches_the_erf_definition() {
        // The series reference is exact enough on [-5, 5]; beyond, GELU is x or 0.
        let mut x = -5.0f32;
        while x < 5.0 {
            let want = 0.5 * x as f64 * (1.0 + libm_erf(x as f64 / std::f64::consts::SQRT_2));
            assert!(
                (gelu(x) as f64 - want).abs() < 2e-6,
                "gelu({x}) = {}, want {want}",
                gelu(x)
            );
            x += 0.01;
        }
        assert!(gelu(-8.0).abs() < 1e-6 && gelu(-30.0).abs() < 1e-6);
        assert!((gelu(8.0) - 8.0).abs() < 1e-6 && gelu(30.0) == 30.0);
    }

    /// erf in f64 by its Maclaurin series (slow; exact to ~1e-12 for |x| < 4).
    fn libm_erf(x: f64) -> f64 {
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 || n < 5.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
            if n > 200.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn ops_match_candle() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 3.0, (4, 37, 129), &dev).unwrap();
        let ours = softmax_last_dim(&x).unwrap();
        let theirs = candle_nn::ops::softmax_last_dim(&x).unwrap();
        let d = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
        let ours = gelu_erf(&x).unwrap();
        let theirs = x.gelu_erf().unwrap();
        let d = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        // Rows sum to one.
        let sums = softmax_last_dim(&x).unwrap().sum(2).unwrap();
        let max_err = (sums - 1.0)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(max_err < 1e-5);
    }
}
