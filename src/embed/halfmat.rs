//! Short products against half-precision copies of the weights: one query's few tokens
//! times a weight matrix.
//!
//! With a few dozen rows a product does little arithmetic per weight, so its time is the
//! time to read the weights (42 MB in f32 for MiniLM's six layers, more than this
//! machine's caches hold). Packed as f16 the weights are half the bytes, widened to f32 in
//! registers (`vcvtph2ps`) right before the multiply-add, and every sum is kept in f32.
//! Rounding a weight to f16 moves it by at most 2^-11 of itself: single-sentence embeddings
//! measured cosine 0.9999996 or better against sentence-transformers' reference vectors
//! (`tests/it/embedding_parity.rs` runs both paths and requires 0.999).
//! Longer batches keep to `gemm` on the f32 weights, which is faster there.
//!
//! AVX-512F only: on other CPUs [`HalfWeights::pack`] returns `None` and every product
//! goes through `gemm`.

use rayon::prelude::*;

/// Output columns per packed panel: one 16-lane register.
pub const PANEL: usize = 16;
/// Products of up to this many rows take the f16 path. Measured on MiniLM's 24 products
/// (2 cores, AVX-512): 48 rows 8.1 ms vs `gemm` 13.1 ms, 64 rows 10 vs 15.5 ms on two
/// threads; on one thread the two meet between 64 and 80 rows, and at 128 rows `gemm` is
/// faster on both.
pub const MAX_ROWS: usize = 64;
/// Rows per register block (12 accumulators plus the weight register).
const BLOCK_ROWS: usize = 12;

/// A `k x n` weight matrix as f16, in panels of [`PANEL`] columns: panel `p` holds
/// `k` rows of its 16 columns, contiguously, so the kernel reads it front to back.
pub struct HalfWeights {
    panels: Vec<u16>,
    k: usize,
    n: usize,
}

impl HalfWeights {
    /// Packs `w` (`k x n`, row-major) when this CPU has the f16 kernel and `n` is a whole
    /// number of panels; `None` otherwise.
    pub fn pack(w: &[f32], k: usize, n: usize) -> Option<Self> {
        if !kernel_available() || !n.is_multiple_of(PANEL) || w.len() != k * n || k == 0 {
            return None;
        }
        let mut panels = Vec::with_capacity(k * n);
        for p in 0..n / PANEL {
            for row in w.chunks_exact(n) {
                panels.extend(
                    row[p * PANEL..(p + 1) * PANEL]
                        .iter()
                        .map(|&v| ::half::f16::from_f32(v).to_bits()),
                );
            }
        }
        Some(Self { panels, k, n })
    }

    /// `dst += x * W` for the first `rows` rows of `x` (`rows x k`) and `dst` (`rows x n`),
    /// panels split across the current rayon pool.
    pub fn apply_accumulate(&self, x: &[f32], rows: usize, dst: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        assert!(
            x.len() >= rows * k && dst.len() >= rows * n,
            "short buffers"
        );
        if rows == 0 {
            return;
        }
        // Each panel's result goes to its own contiguous part of `out` (so the parallel
        // writes are disjoint slices), then back into `dst`'s rows.
        let mut out = vec![0f32; rows * n];
        let init: &[f32] = dst;
        out.par_chunks_mut(rows * PANEL)
            .enumerate()
            .with_min_len(2)
            .for_each(|(p, out)| {
                let w = &self.panels[p * k * PANEL..(p + 1) * k * PANEL];
                let blocks = rows.div_ceil(BLOCK_ROWS);
                let mut r0 = 0;
                for b in 0..blocks {
                    // Balanced blocks: 25 rows run as 8 + 8 + 9, not 12 + 12 + 1.
                    let r1 = (b + 1) * rows / blocks;
                    block(
                        &x[r0 * k..r1 * k],
                        k,
                        w,
                        &init[r0 * n + p * PANEL..],
                        n,
                        &mut out[r0 * PANEL..r1 * PANEL],
                    );
                    r0 = r1;
                }
            });
        for (p, panel) in out.chunks_exact(rows * PANEL).enumerate() {
            for (r, src) in panel.chunks_exact(PANEL).enumerate() {
                dst[r * n + p * PANEL..r * n + (p + 1) * PANEL].copy_from_slice(src);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn kernel_available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn kernel_available() -> bool {
    false
}

/// One register block: `out[r] = init[r * n ..][..16] + x[r] * panel` for each of the
/// `x.len() / k` rows (1 to [`BLOCK_ROWS`]).
fn block(x: &[f32], k: usize, w: &[u16], init: &[f32], n: usize, out: &mut [f32]) {
    let rows = x.len() / k;
    assert!((1..=BLOCK_ROWS).contains(&rows) && x.len() == rows * k);
    assert!(w.len() == k * PANEL && out.len() == rows * PANEL);
    assert!(init.len() >= (rows - 1) * n + PANEL);
    #[cfg(target_arch = "x86_64")]
    {
        assert!(kernel_available(), "the f16 kernel needs AVX-512F");
        macro_rules! dispatch {
            ($($r:literal)*) => {
                match rows {
                    $($r => avx512::block::<$r>(x, k, w, init, n, out),)*
                    _ => unreachable!(),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12);
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("HalfWeights::pack returns None here");
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::PANEL;

    /// Safe entry: the caller (`super::block`) has checked every length the kernel reads
    /// or writes, and that the CPU has AVX-512F.
    #[inline]
    #[expect(
        unsafe_code,
        reason = "AVX-512 intrinsics and raw loads; bounds and CPU support checked by the caller"
    )]
    pub fn block<const R: usize>(
        x: &[f32],
        k: usize,
        w: &[u16],
        init: &[f32],
        n: usize,
        out: &mut [f32],
    ) {
        // SAFETY: `super::block` asserted x.len() == R * k, w.len() == k * 16,
        // out.len() == R * 16, init.len() >= (R - 1) * n + 16, and AVX-512F support.
        unsafe {
            kernel::<R>(
                x.as_ptr(),
                k,
                w.as_ptr(),
                init.as_ptr(),
                n,
                out.as_mut_ptr(),
            )
        }
    }

    #[target_feature(enable = "avx512f")]
    #[expect(unsafe_code, reason = "raw loads within the bounds `block` checked")]
    unsafe fn kernel<const R: usize>(
        x: *const f32,
        k: usize,
        w: *const u16,
        init: *const f32,
        n: usize,
        out: *mut f32,
    ) {
        // SAFETY (all pointer arithmetic below): rows r < R, columns < 16, kk < k, within
        // the lengths checked by `block`.
        unsafe {
            let mut acc = [_mm512_setzero_ps(); R];
            for (r, a) in acc.iter_mut().enumerate() {
                *a = _mm512_loadu_ps(init.add(r * n));
            }
            for kk in 0..k {
                let wv = _mm512_cvtph_ps(_mm256_loadu_si256(w.add(kk * PANEL).cast()));
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(*x.add(r * k + kk)), wv, *a);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * PANEL), *a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], rows: usize, k: usize, n: usize, init: &[f32]) -> Vec<f32> {
        let mut out = init.to_vec();
        for r in 0..rows {
            for j in 0..n {
                out[r * n + j] += (0..k).map(|p| x[r * k + p] * w[p * n + j]).sum::<f32>();
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 1000.0 - 0.5)
            .collect()
    }

    #[test]
    fn matches_the_f32_product_for_whole_and_split_row_blocks() {
        let (k, n) = (40, 48);
        let w = values(k * n, 7);
        let Some(hw) = HalfWeights::pack(&w, k, n) else {
            assert!(
                !kernel_available(),
                "packable shape refused on an AVX-512 CPU"
            );
            return;
        };
        for rows in [1, 2, 5, 12, 13, 25, MAX_ROWS] {
            let x = values(rows * k, 3);
            let init = values(rows * n, 11);
            let mut dst = init.clone();
            hw.apply_accumulate(&x, rows, &mut dst);
            let want = naive(&x, &w, rows, k, n, &init);
            for (i, (got, want)) in dst.iter().zip(&want).enumerate() {
                // Each weight is within 2^-11 of itself; 40 terms of |x w| <= 0.25.
                assert!(
                    (got - want).abs() < 5e-3,
                    "rows {rows}, element {i}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn refuses_shapes_that_are_not_whole_panels() {
        assert!(HalfWeights::pack(&values(8 * 20, 1), 8, 20).is_none());
        assert!(
            HalfWeights::pack(&values(10, 1), 8, 16).is_none(),
            "wrong length"
        );
    }
}
