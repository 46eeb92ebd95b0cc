//! The numeric kernels — dense layers (matmuls), LayerNorm, GELU, softmax — and the hooks
//! called around every matmul.

pub(crate) use super::simd::matvec_acc;
use super::simd::matmul_acc;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};
use std::time::{Duration, Instant};

/// Called around every matmul kernel and at the start of every generated token.
///
/// The server releases its interpreter lock in `kernel_enter` and takes it back in
/// `kernel_exit`, as NumPy releases the GIL only inside its kernels. All methods do nothing
/// by default; [`NoHooks`] compiles to nothing.
pub trait KernelHooks {
    /// A matmul kernel is about to run.
    fn kernel_enter(&mut self) {}
    /// The matmul kernel is done.
    fn kernel_exit(&mut self) {}
    /// A new token's forward pass starts.
    fn token_start(&mut self) {}
}

/// Hooks that do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl KernelHooks for NoHooks {}

impl<H: KernelHooks + ?Sized> KernelHooks for &mut H {
    fn kernel_enter(&mut self) {
        (**self).kernel_enter();
    }
    fn kernel_exit(&mut self) {
        (**self).kernel_exit();
    }
    fn token_start(&mut self) {
        (**self).token_start();
    }
}

/// Hooks that time the kernels, then call inner hooks.
#[derive(Debug, Default)]
pub struct TimingHooks<H: KernelHooks = NoHooks> {
    /// Hooks called after timing.
    pub inner: H,
    /// Time inside kernels so far.
    pub matmul: Duration,
    /// Kernels run so far.
    pub kernels: u64,
    entered: Option<Instant>,
}

impl<H: KernelHooks> TimingHooks<H> {
    /// Wraps `inner`.
    pub fn new(inner: H) -> Self {
        Self { inner, matmul: Duration::ZERO, kernels: 0, entered: None }
    }
}

impl<H: KernelHooks> KernelHooks for TimingHooks<H> {
    fn kernel_enter(&mut self) {
        self.inner.kernel_enter();
        self.entered = Some(Instant::now());
    }
    fn kernel_exit(&mut self) {
        if let Some(t) = self.entered.take() {
            self.matmul += t.elapsed();
        }
        self.kernels += 1;
        self.inner.kernel_exit();
    }
    fn token_start(&mut self) {
        self.inner.token_start();
    }
}

/// `out = x·W + b` for `x` of shape (rows, in), `W` (in, out), `b` (out), as one kernel.
pub(crate) fn linear(
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    b: ArrayView1<f32>,
    mut out: ArrayViewMut2<f32>,
    hooks: &mut impl KernelHooks,
) {
    hooks.kernel_enter();
    let dim = out.dim();
    out.assign(&b.broadcast(dim).expect("bias matches"));
    let k = w.nrows();
    let (x, w) = (x.as_slice().expect("contiguous input"), w.as_slice().expect("contiguous weights"));
    matmul_acc(x, w, k, out.as_slice_mut().expect("contiguous output"));
    hooks.kernel_exit();
}

/// LayerNorm of each row of `x` into `out` (ε = 1e-5).
pub(crate) fn layer_norm(x: ArrayView2<f32>, g: ArrayView1<f32>, b: ArrayView1<f32>, mut out: ArrayViewMut2<f32>) {
    for (xr, mut orow) in x.outer_iter().zip(out.outer_iter_mut()) {
        let n = xr.len() as f32;
        let mean = xr.sum() / n;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + 1e-5).sqrt();
        for (((o, &v), &gi), &bi) in orow.iter_mut().zip(xr).zip(g).zip(b) {
            *o = (v - mean) * inv * gi + bi;
        }
    }
}

/// tanh by the rational approximation of Eigen's `generic_fast_tanh_float` (x·P(x²)/Q(x²)
/// with |x| clamped to 7.905, where tanh rounds to ±1): within a few ulp of `f32::tanh`, and
/// plain arithmetic that vectorizes (the library call does not).
#[inline]
fn tanh(x: f32) -> f32 {
    const A: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_672e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    const B: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let p = x * (A[0] + x2 * (A[1] + x2 * (A[2] + x2 * (A[3] + x2 * (A[4] + x2 * (A[5] + x2 * A[6]))))));
    let q = B[0] + x2 * (B[1] + x2 * (B[2] + x2 * B[3]));
    p / q
}

/// GELU (tanh approximation, as in GPT-2), in place.
pub(crate) fn gelu(mut x: ArrayViewMut2<f32>) {
    const C: f32 = 0.797_884_6; // √(2/π)
    x.mapv_inplace(|v| 0.5 * v * (1.0 + tanh(C * (v + 0.044_715 * v * v * v))));
}

/// Softmax in place.
pub(crate) fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// Index of the largest value (the first on ties).
pub(crate) fn argmax(x: ArrayView1<f32>) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

/// Adds `y` to `x` row by row.
pub(crate) fn add_assign(mut x: ArrayViewMut2<f32>, y: ArrayView2<f32>) {
    x += &y;
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_tanh_is_within_1e6_of_the_library() {
        for i in -20_000..=20_000 {
            let x = i as f32 * 1e-3;
            assert!((super::tanh(x) - x.tanh()).abs() < 1e-6, "{x}: {} vs {}", super::tanh(x), x.tanh());
        }
    }
}
