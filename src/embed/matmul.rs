//! Strided matrix views and one safe entry to the `gemm` crate's kernels.
//!
//! The encoder multiplies views into shared buffers (one attention head's columns of the
//! packed query/key/value matrix, a transposed key block) without copying them: a view is
//! a slice plus row and column strides, checked against the slice's length when it is made.

use gemm::Parallelism;

/// A `rows x cols` matrix over a slice: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct Mat<S> {
    data: S,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// A read-only view.
pub type MatRef<'a> = Mat<&'a [f32]>;
/// A writable view.
pub type MatMut<'a> = Mat<&'a mut [f32]>;

impl<S: AsRef<[f32]>> Mat<S> {
    /// Panics if the view would reach past the end of `data`.
    pub fn new(data: S, rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        let len = data.as_ref().len();
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * rs + (cols - 1) * cs;
            assert!(
                last < len,
                "a {rows}x{cols} view (strides {rs}, {cs}) overruns its {len} elements"
            );
        }
        Self {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// A contiguous row-major matrix.
    pub fn rows(data: S, rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }
}

/// `dst = scale * a * b`, or `dst += scale * a * b` when `accumulate`, on up to `threads`
/// rayon threads (1: the calling thread only).
#[expect(
    unsafe_code,
    reason = "gemm's kernels take raw pointers and strides; the views were bounds-checked when made"
)]
pub fn gemm(dst: MatMut, a: MatRef, b: MatRef, scale: f32, accumulate: bool, threads: usize) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    assert_eq!(
        (dst.rows, dst.cols),
        (a.rows, b.cols),
        "output shape differs"
    );
    let (m, n, k) = (dst.rows, dst.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: every element each view can address lies inside its slice (checked in `new`);
    // `dst` is borrowed mutably, so it overlaps neither input; gemm reads `k` = a.cols =
    // b.rows columns of `a` and rows of `b`, and writes the `m x n` elements of `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            dst.cs as isize,
            dst.rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    fn seq(n: usize, salt: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 + salt).sin()).collect()
    }

    #[test]
    fn multiplies_and_accumulates_like_the_textbook() {
        let (m, k, n) = (7, 13, 5);
        let (a, b) = (seq(m * k, 0.1), seq(k * n, 0.9));
        let want = naive(&a, &b, m, k, n);
        for threads in [1, 2] {
            // A fresh product ignores the NaNs already there; accumulating a half-scaled
            // product onto it then gives 1.5x.
            let mut dst = vec![f32::NAN; m * n];
            for (scale, accumulate, total) in [(1.0, false, 1.0), (0.5, true, 1.5)] {
                gemm(
                    MatMut::rows(&mut dst, m, n),
                    MatRef::rows(&a, m, k),
                    MatRef::rows(&b, k, n),
                    scale,
                    accumulate,
                    threads,
                );
                for (x, y) in dst.iter().zip(&want) {
                    assert!((x - total * y).abs() < 1e-5, "{x} vs {}", total * y);
                }
            }
        }
    }

    #[test]
    fn strided_views_read_transposes_and_column_blocks_in_place() {
        // `wide` is 4 x 6; its columns 2..5 form a 4 x 3 block A. B = A^T, read through strides.
        let wide = seq(24, 0.3);
        let block: Vec<f32> = (0..4)
            .flat_map(|i| (2..5).map(move |j| (i, j)))
            .map(|(i, j)| wide[i * 6 + j])
            .collect();
        let transposed: Vec<f32> = (0..3)
            .flat_map(|j| (0..4).map(move |i| (i, j)))
            .map(|(i, j)| block[i * 3 + j])
            .collect();
        let want = naive(&block, &transposed, 4, 3, 4);
        let mut dst = vec![0f32; 16];
        let a = MatRef::new(&wide[2..], 4, 3, 6, 1);
        let bt = MatRef::new(&wide[2..], 3, 4, 1, 6);
        gemm(MatMut::rows(&mut dst, 4, 4), a, bt, 1.0, false, 1);
        for (x, y) in dst.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5);
        }
    }

    #[test]
    #[should_panic(expected = "overruns")]
    fn a_view_past_its_slice_is_refused() {
        let data = vec![0f32; 10];
        let _ = MatRef::new(&data, 3, 4, 4, 1);
    }
}
