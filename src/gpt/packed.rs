//! Weight matrices in panels: the layout the matmul kernels stream.
//!
//! A (k, n) matrix is stored as ⌈n / 16⌉ panels of 16 columns, each (k, 16) row-major and
//! contiguous (the last one narrower when 16 does not divide n). A kernel then reads every
//! weight it needs as a sequential stream — what the hardware prefetcher serves best when
//! the weights come from L2 at every token — instead of 64-byte pieces `n` floats apart.
//! Files keep the standard (in, out) layout; packing happens once, at load.

use super::simd::{PANEL, matmul_acc};
use ndarray::{Array2, ArrayView2};

/// A (k, n) matrix in panels of [`PANEL`] columns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Packed {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl Packed {
    /// Packs `w`.
    pub(crate) fn new(w: ArrayView2<f32>) -> Self {
        let (k, n) = w.dim();
        let mut data = Vec::with_capacity(k * n);
        for j0 in (0..n).step_by(PANEL) {
            let cols = j0..(j0 + PANEL).min(n);
            for row in w.outer_iter() {
                data.extend(row.iter().skip(cols.start).take(cols.len()));
            }
        }
        Self { k, n, data }
    }

    /// The matrix in standard layout.
    pub(crate) fn unpack(&self) -> Array2<f32> {
        let mut w = Array2::zeros((self.k, self.n));
        let mut it = self.data.iter();
        for j0 in (0..self.n).step_by(PANEL) {
            let width = PANEL.min(self.n - j0);
            for i in 0..self.k {
                for j in j0..j0 + width {
                    w[[i, j]] = *it.next().expect("k·n values");
                }
            }
        }
        w
    }

    /// `out += x·W` for `x` (rows, k) and `out` (rows, n), row-major.
    pub(crate) fn mul_acc(&self, x: &[f32], out: &mut [f32]) {
        matmul_acc(x, &self.data, self.k, self.n, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_and_multiplies() {
        // 37 columns: two full panels and one of 5.
        let w = Array2::from_shape_fn((6, 37), |(i, j)| (i * 37 + j) as f32 * 0.01);
        let p = Packed::new(w.view());
        assert_eq!(p.unpack(), w);
        let x = Array2::from_shape_fn((7, 6), |(r, i)| ((r * 6 + i) as f32 * 0.3).sin());
        let mut out = vec![1.0f32; 7 * 37];
        p.mul_acc(x.as_slice().unwrap(), &mut out);
        let want = x.dot(&w) + 1.0;
        for (a, b) in out.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
