//! Element-wise CPU kernels the encoder spends its non-GEMM time in: GELU (erf form), the
//! row softmax of attention scores, and layer normalisation.
//!
//! libm's scalar `erff`/`expf` would dominate; here a polynomial `exp` written so the
//! compiler vectorises it, and the Abramowitz–Stegun erf (absolute error below 1.5e-7).
//! Every kernel works in place on slices, split across rayon's pool.

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

/// The slice loops, compiled once per instruction set and picked at run time: the crate is
/// built for baseline x86-64, where these loops would only use 4-wide SSE.
mod simd {
    use super::{exp, gelu};

    /// Lanes for the reductions: independent accumulators the compiler keeps in one register.
    const LANES: usize = 16;

    #[inline(always)]
    fn gelu_generic(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = gelu(*v);
        }
    }

    #[inline(always)]
    fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
        let mut acc = [0f32; LANES];
        let mut chunks = x.chunks_exact(LANES);
        for c in &mut chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += f(v);
            }
        }
        acc.iter().sum::<f32>() + chunks.remainder().iter().map(|&v| f(v)).sum::<f32>()
    }

    #[inline(always)]
    fn softmax_generic(x: &mut [f32]) {
        let mut m = [f32::NEG_INFINITY; LANES];
        let mut chunks = x.chunks_exact(LANES);
        for c in &mut chunks {
            for (m, &v) in m.iter_mut().zip(c) {
                *m = if v > *m { v } else { *m };
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
        for v in x.iter_mut() {
            *v = exp(*v - max);
        }
        let inv = 1.0 / lane_sum(x, |v| v);
        for v in x.iter_mut() {
            *v *= inv;
        }
    }

    #[inline(always)]
    fn layer_norm_generic(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let n = x.len() as f32;
        let mean = lane_sum(x, |v| v) / n;
        let var = lane_sum(x, |v| (v - mean) * (v - mean)) / n;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, &g), &b) in x.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }

    /// `pub fn $name(args)`: runs `$generic` compiled for AVX-512F, else AVX2+FMA, else
    /// the baseline, whichever the CPU has.
    macro_rules! dispatched {
        (fn $name:ident($($arg:ident: $ty:ty),*) => $generic:ident) => {
            #[expect(
                unsafe_code,
                reason = "calling a #[target_feature] function after checking the CPU has the feature"
            )]
            pub fn $name($($arg: $ty),*) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f")]
                    fn avx512($($arg: $ty),*) {
                        $generic($($arg),*)
                    }
                    #[target_feature(enable = "avx2,fma")]
                    fn avx2($($arg: $ty),*) {
                        $generic($($arg),*)
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU supports AVX-512F (checked just above).
                        return unsafe { avx512($($arg),*) };
                    }
                    if std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                    {
                        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                        return unsafe { avx2($($arg),*) };
                    }
                }
                $generic($($arg),*)
            }
        };
    }

    dispatched!(fn gelu_slice(x: &mut [f32]) => gelu_generic);
    dispatched!(fn softmax_row(x: &mut [f32]) => softmax_generic);
    dispatched!(fn layer_norm_row(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) => layer_norm_generic);
}

/// GELU (erf form) of every element, in place.
pub fn gelu_in_place(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK).for_each(simd::gelu_slice);
}

/// Softmax of every `n`-element row, in place (serial: attention calls it per head,
/// already inside a parallel loop).
pub fn softmax_rows(x: &mut [f32], n: usize) {
    for row in x.chunks_mut(n.max(1)) {
        simd::softmax_row(row);
    }
}

/// Layer normalisation of every row (`gamma.len()` elements), in place.
pub fn layer_norm_rows(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = gamma.len().max(1);
    let rows_per_unit = (CHUNK / n).max(1);
    x.par_chunks_mut(rows_per_unit * n).for_each(|rows| {
        for row in rows.chunks_mut(n) {
            simd::layer_norm_row(row, gamma, beta, eps);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn softmax_rows_are_distributions_in_the_right_order() {
        let mut x: Vec<f32> = (0..3 * 37).map(|i| (i as f32 * 0.71).sin() * 9.0).collect();
        let orig = x.clone();
        softmax_rows(&mut x, 37);
        for (row, src) in x.chunks(37).zip(orig.chunks(37)) {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
            let max = src.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let denom: f64 = src.iter().map(|&v| ((v - max) as f64).exp()).sum();
            for (p, &v) in row.iter().zip(src) {
                let want = ((v - max) as f64).exp() / denom;
                assert!((*p as f64 - want).abs() < 1e-6, "{p} vs {want}");
            }
        }
    }

    #[test]
    fn layer_norm_centres_and_scales_each_row() {
        let n = 384;
        let mut x: Vec<f32> = (0..2 * n)
            .map(|i| (i as f32 * 0.13).cos() * 5.0 + 2.0)
            .collect();
        let gamma: Vec<f32> = (0..n).map(|i| 1.0 + i as f32 / n as f32).collect();
        let beta = vec![0.5f32; n];
        let orig = x.clone();
        layer_norm_rows(&mut x, &gamma, &beta, 1e-12);
        for (row, src) in x.chunks(n).zip(orig.chunks(n)) {
            let mean = src.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = src.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            for i in 0..n {
                let want = (src[i] as f64 - mean) / var.sqrt() * gamma[i] as f64 + 0.5;
                assert!((row[i] as f64 - want).abs() < 1e-4, "{} vs {want}", row[i]);
            }
        }
    }

    #[test]
    fn gelu_in_place_matches_the_scalar_form() {
        let mut x: Vec<f32> = (0..40_000)
            .map(|i| (i as f32 - 20_000.0) / 2_000.0)
            .collect();
        let want: Vec<f32> = x.iter().map(|&v| gelu(v)).collect();
        gelu_in_place(&mut x);
        assert_eq!(x, want);
    }
}
