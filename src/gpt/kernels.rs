//! The numeric kernels — dense layers (matmuls), LayerNorm, GELU, softmax — on row-major
//! slices: the forward pass keeps its activations in preallocated buffers.
//!
//! The pointwise kernels are dispatched like the matmuls (AVX2 + FMA when the CPU has them)
//! and sum in 8 independent lanes: a float sum in one chain cannot be vectorized (its
//! order is fixed), and at d = 64 those chains would cost as much as the matmuls.

use super::hooks::KernelHooks;
use super::packed::Packed;
use super::simd::{kernel, madd};
use ndarray::Array1;

/// `out = x·W (+ b)` for `x` (rows, k), `W` (k, n), `out` (rows, n), as one kernel.
pub(crate) fn dense(
    x: &[f32],
    w: &Packed,
    b: Option<&Array1<f32>>,
    out: &mut [f32],
    hooks: &mut impl KernelHooks,
) {
    hooks.kernel_enter();
    match b {
        Some(b) => out.chunks_exact_mut(b.len()).for_each(|o| o.copy_from_slice(slice(b))),
        None => out.fill(0.0),
    }
    w.mul_acc(x, out);
    hooks.kernel_exit();
}

/// `x += y·W + b` — a dense layer added to the residual stream, as one kernel.
pub(crate) fn dense_add(y: &[f32], w: &Packed, b: &Array1<f32>, x: &mut [f32], hooks: &mut impl KernelHooks) {
    hooks.kernel_enter();
    for row in x.chunks_exact_mut(b.len()) {
        row.iter_mut().zip(b).for_each(|(o, b)| *o += b);
    }
    w.mul_acc(y, x);
    hooks.kernel_exit();
}

/// The values of a 1-d parameter.
pub(crate) fn slice(a: &Array1<f32>) -> &[f32] {
    a.as_slice().expect("standard layout")
}

/// Lanes of the partial sums.
const LANES: usize = 8;

/// `Σ f(x)` in `LANES` partial sums.
#[inline(always)]
fn sum_by(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        acc.iter_mut().zip(c).for_each(|(a, &v)| *a += f(v));
    }
    chunks.remainder().iter().map(|&v| f(v)).sum::<f32>() + acc.iter().sum::<f32>()
}

/// `max x` in `LANES` partial maxima.
#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        acc.iter_mut().zip(c).for_each(|(a, &v)| *a = if v > *a { v } else { *a });
    }
    chunks.remainder().iter().chain(&acc).fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

#[inline(always)]
fn layer_norm_body<const F: bool>(x: &[f32], g: &[f32], b: &[f32], out: &mut [f32]) {
    let d = g.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean = sum_by(xr, |v| v) / d as f32;
        or.iter_mut().zip(xr).for_each(|(o, &v)| *o = v - mean);
        let var = sum_by(or, |v| v * v) / d as f32;
        let inv = 1.0 / (var + 1e-5).sqrt();
        for ((o, &gi), &bi) in or.iter_mut().zip(g).zip(b) {
            *o = madd::<F>(*o * inv, gi, bi);
        }
    }
}

kernel! {
    /// LayerNorm of each `d`-wide row of `x` into `out` (ε = 1e-5; `d` = the gain's length).
    fn layer_norm / layer_norm_fma(x: &[f32], g: &[f32], b: &[f32], out: &mut [f32]) = layer_norm_body
}

/// tanh by the rational approximation of Eigen's `generic_fast_tanh_float` (x·P(x²)/Q(x²)
/// with |x| clamped to 7.905, where tanh rounds to ±1): within a few ulp of `f32::tanh`, and
/// plain arithmetic that vectorizes (the library call does not).
#[inline(always)]
fn tanh<const F: bool>(x: f32) -> f32 {
    const A: [f32; 7] = [
        -2.760_768_5e-16,
        2.000_188e-13,
        -8.604_672e-11,
        5.122_297e-8,
        1.485_722_4e-5,
        6.372_619_3e-4,
        4.893_524_6e-3,
    ];
    const B: [f32; 4] = [1.198_258_4e-6, 1.185_347_1e-4, 2.268_434_6e-3, 4.893_525e-3];
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let p = x * A.iter().fold(0.0, |p, &c| madd::<F>(p, x2, c));
    let q = B.iter().fold(0.0, |q, &c| madd::<F>(q, x2, c));
    p / q
}

/// eˣ by Cephes' `expf`: x = n·ln2 + r with |r| ≤ ln2/2, a degree-7 polynomial for eʳ, and
/// 2ⁿ built in the exponent bits. Within 2e-7 (relative) of `f32::exp` for x ≥ −87.3; below,
/// it gives the smallest normal, ~1e-38: nothing, to a softmax. Plain arithmetic that
/// vectorizes.
#[inline(always)]
fn exp<const F: bool>(x: f32) -> f32 {
    // 1.5·2²³: adding it rounds to an integer, in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];
    let x = x.clamp(-87.3, 88.0);
    let t = madd::<F>(x, std::f32::consts::LOG2_E, ROUND);
    let n = t - ROUND;
    let r = madd::<F>(n, 2.121_944_4e-4, madd::<F>(n, -0.693_359_4, x));
    let p = P.iter().fold(0.0, |p, &c| madd::<F>(p, r, c));
    let er = madd::<F>(p, r * r, r + 1.0);
    // n sits in t's low mantissa bits: 2ⁿ without a float → int cast (a saturating `as`
    // would not vectorize).
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    er * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// Elements per iteration of the pointwise loops: 4 vectors in flight, so one element's
/// polynomial (a chain of dependent FMAs) does not wait on the previous one's.
const UNROLL: usize = 8;

/// `f` on every element of `x`, `UNROLL` at a time.
#[inline(always)]
fn map_in_place(x: &mut [f32], f: impl Fn(f32) -> f32) {
    let mut chunks = x.chunks_exact_mut(UNROLL);
    for c in &mut chunks {
        c.iter_mut().for_each(|v| *v = f(*v));
    }
    chunks.into_remainder().iter_mut().for_each(|v| *v = f(*v));
}

#[inline(always)]
fn gelu_body<const F: bool>(x: &mut [f32]) {
    const C: f32 = 0.797_884_6; // √(2/π)
    map_in_place(x, |v| 0.5 * v * (1.0 + tanh::<F>(C * madd::<F>(0.044_715 * v, v * v, v))));
}

kernel! {
    /// GELU (tanh approximation, as in GPT-2), in place.
    fn gelu / gelu_fma(x: &mut [f32]) = gelu_body
}

#[inline(always)]
fn softmax_body<const F: bool>(x: &mut [f32], scale: f32) {
    let m = max(x);
    map_in_place(x, |v| exp::<F>((v - m) * scale));
    let inv = 1.0 / sum_by(x, |v| v);
    x.iter_mut().for_each(|v| *v *= inv);
}

kernel! {
    /// Softmax of `scale·x`, in place (`scale` > 0: the attention's 1/√head_dim).
    fn softmax / softmax_fma(x: &mut [f32], scale: f32) = softmax_body
}

/// Index of the largest value (the first on ties).
pub(crate) fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::NoHooks;

    #[test]
    fn fast_tanh_is_within_1e6_of_the_library() {
        for i in -20_000..=20_000 {
            let x = i as f32 * 1e-3;
            for got in [tanh::<false>(x), tanh::<true>(x)] {
                assert!((got - x.tanh()).abs() < 1e-6, "{x}: {got} vs {}", x.tanh());
            }
        }
    }

    #[test]
    fn fast_exp_is_within_2e7_relative_of_the_library() {
        for i in -87_000..=10_000 {
            let x = i as f32 * 1e-3;
            for got in [exp::<false>(x), exp::<true>(x)] {
                assert!(((got - x.exp()) / x.exp()).abs() < 2e-7, "{x}: {got} vs {}", x.exp());
            }
        }
        assert!(exp::<false>(-1e4) < 1e-37 && exp::<true>(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn pointwise_kernels_match_their_definitions() {
        let x: Vec<f32> = (0..70).map(|i| (i as f32 * 0.9).sin() * 3.0).collect();
        let mut s = x.clone();
        softmax(&mut s, 0.5);
        let z: f32 = x.iter().map(|v| (0.5 * v).exp()).sum();
        for (got, v) in s.iter().zip(&x) {
            assert!((got - (0.5 * v).exp() / z).abs() < 1e-7);
        }
        let mut g = x.clone();
        gelu(&mut g);
        for (got, v) in g.iter().zip(&x) {
            let want =
                0.5 * v * (1.0 + ((2.0 / std::f32::consts::PI).sqrt() * (v + 0.044_715 * v * v * v)).tanh());
            assert!((got - want).abs() < 1e-5, "gelu({v}) = {got}, want {want}");
        }
        let (gain, bias) = (vec![2.0; 35], vec![1.0; 35]);
        let mut ln = vec![0.0; 70];
        layer_norm(&x, &gain, &bias, &mut ln);
        for row in ln.chunks_exact(35) {
            let mean = row.iter().sum::<f32>() / 35.0;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 35.0;
            assert!((mean - 1.0).abs() < 1e-5 && (var - 4.0).abs() < 1e-3, "mean {mean}, var {var}");
        }
    }

    #[test]
    fn dense_layers_compute_x_w_plus_b() {
        // x (3, 2), W (2, 5), b = 1.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = ndarray::Array2::from_shape_fn((2, 5), |(i, j)| (5 * i + j) as f32);
        let packed = Packed::new(w.view());
        let b = Array1::from_elem(5, 1.0);
        let want = |r: usize, j: usize| 1.0 + x[2 * r] * w[[0, j]] + x[2 * r + 1] * w[[1, j]];
        let mut out = [0.0; 15];
        dense(&x, &packed, Some(&b), &mut out, &mut NoHooks);
        let mut res = [10.0; 15];
        dense_add(&x, &packed, &b, &mut res, &mut NoHooks);
        for (i, (o, r)) in out.iter().zip(&res).enumerate() {
            assert_eq!(*o, want(i / 5, i % 5));
            assert_eq!(*r, 10.0 + want(i / 5, i % 5));
        }
    }
}
