//! The two inner loops of the model — `y += a·x` and `a·b` — with runtime CPU dispatch:
//! compiled for AVX2 + FMA and used when the CPU has them, plain code otherwise.

/// Whether this CPU runs the AVX2 + FMA versions (checked once).
#[cfg(target_arch = "x86_64")]
fn has_fma() -> bool {
    static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FMA.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    // Without the FMA instruction `mul_add` is a slow library call: fuse only when compiled
    // for it.
    if FUSED { a.mul_add(b, c) } else { a * b + c }
}

#[inline(always)]
fn axpy_body<const FUSED: bool>(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = madd::<FUSED>(a, xi, *yi);
    }
}

/// Defines a kernel twice — compiled for AVX2 + FMA, and plain — behind one function
/// that picks at run time.
macro_rules! kernel {
    ($(#[$doc:meta])* fn $name:ident / $fma:ident ($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $body:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $fma($($arg: $ty),*) $(-> $ret)? {
            $body::<true>($($arg),*)
        }

        $(#[$doc])*
        #[inline]
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if has_fma() {
                // SAFETY: the CPU has AVX2 and FMA (checked by `has_fma`).
                return unsafe { $fma($($arg),*) };
            }
            $body::<false>($($arg),*)
        }
    };
}

/// Output columns kept in registers at once (8 AVX registers: independent FMA chains).
const BLOCK: usize = 64;
/// The narrower block for short rows (an attention head).
const SMALL: usize = 16;

/// `out += Σ_k x[k]·W[k, ..]` for a block of `B` output columns starting at `j`; rows of
/// `W` start every `stride` values.
#[inline(always)]
fn block<const FUSED: bool, const B: usize>(x: &[f32], w: &[f32], stride: usize, j: usize, out: &mut [f32]) {
    let mut acc = [0.0f32; B];
    acc.copy_from_slice(&out[j..j + B]);
    for (k, &xk) in x.iter().enumerate() {
        let wb = &w[k * stride + j..k * stride + j + B];
        for t in 0..B {
            acc[t] = madd::<FUSED>(xk, wb[t], acc[t]);
        }
    }
    out[j..j + B].copy_from_slice(&acc);
}

/// `out += x·W` where row `k` of `W` is `w[k·stride ..][.. out.len()]`: output columns
/// accumulate in registers over all of `x`, in blocks, and are stored once.
#[inline(always)]
fn matvec_body<const FUSED: bool>(x: &[f32], w: &[f32], stride: usize, out: &mut [f32]) {
    let n = out.len();
    let mut j = 0;
    while j + BLOCK <= n {
        block::<FUSED, BLOCK>(x, w, stride, j, out);
        j += BLOCK;
    }
    while j + SMALL <= n {
        block::<FUSED, SMALL>(x, w, stride, j, out);
        j += SMALL;
    }
    for (k, &xk) in x.iter().enumerate() {
        if j < n {
            axpy_body::<FUSED>(xk, &w[k * stride + j..k * stride + n], &mut out[j..]);
        }
    }
}

/// Rows of `x` that share each load of `W` in [`matmul_body`].
const ROWS: usize = 4;
/// Output columns per register block of [`matmul_body`] (2 AVX registers per row).
const COLS: usize = 16;

/// `out[r] += x[r]·W` for `ROWS` rows at once over a block of `COLS` columns at `j`: every
/// load of `W` serves all rows.
#[inline(always)]
fn rows_block<const FUSED: bool>(x: [&[f32]; ROWS], w: &[f32], n: usize, j: usize, out: &mut [&mut [f32]; ROWS]) {
    let mut acc = [[0.0f32; COLS]; ROWS];
    for (a, o) in acc.iter_mut().zip(out.iter()) {
        a.copy_from_slice(&o[j..j + COLS]);
    }
    for k in 0..x[0].len() {
        let wb = &w[k * n + j..k * n + j + COLS];
        for (a, xr) in acc.iter_mut().zip(&x) {
            let xk = xr[k];
            for t in 0..COLS {
                a[t] = madd::<FUSED>(xk, wb[t], a[t]);
            }
        }
    }
    for (a, o) in acc.iter().zip(out.iter_mut()) {
        o[j..j + COLS].copy_from_slice(a);
    }
}

/// `out += x·W` for a batch: `x` is (rows, k) and `out` (rows, n), row-major; `W` is (k, n).
/// Rows go `ROWS` at a time, so `W` is read once per group of rows, not once per row.
#[inline(always)]
fn matmul_body<const FUSED: bool>(x: &[f32], w: &[f32], k: usize, out: &mut [f32]) {
    let n = w.len() / k;
    let mut xs = x.chunks_exact(k);
    let mut os = out.chunks_exact_mut(n);
    loop {
        let (Some(x0), Some(x1), Some(x2), Some(x3)) = (xs.next(), xs.next(), xs.next(), xs.next()) else { break };
        let (o0, o1, o2, o3) = (os.next(), os.next(), os.next(), os.next());
        let mut o = [o0.expect("row"), o1.expect("row"), o2.expect("row"), o3.expect("row")];
        let mut j = 0;
        while j + COLS <= n {
            rows_block::<FUSED>([x0, x1, x2, x3], w, n, j, &mut o);
            j += COLS;
        }
        for (xr, orow) in [x0, x1, x2, x3].into_iter().zip(o.iter_mut()) {
            matvec_body::<FUSED>(xr, &w[j..], n, &mut orow[j..]);
        }
    }
    // Rows left over (fewer than ROWS) go one at a time.
    let done = x.len() / k / ROWS * ROWS;
    for (xr, orow) in x.chunks_exact(k).skip(done).zip(out.chunks_exact_mut(n).skip(done)) {
        matvec_body::<FUSED>(xr, w, n, orow);
    }
}

kernel! {
    /// `out += x·W` for a row-major batch `x` (rows, k), `W` (k, n), `out` (rows, n).
    fn matmul_acc / matmul_fma(x: &[f32], w: &[f32], k: usize, out: &mut [f32]) = matmul_body
}

kernel! {
    /// `out += x·W`, where row `k` of `W` is `w[k·stride ..][.. out.len()]`.
    fn matvec_acc / matvec_fma(x: &[f32], w: &[f32], stride: usize, out: &mut [f32]) = matvec_body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatched_and_plain_kernels_agree_with_plain_loops() {
        // 7 rows of a strided matrix (stride 100), 85 output columns: a 64-block, a
        // 16-block and a 5-column tail.
        let (rows, cols, stride) = (7, 85, 100);
        let x: Vec<f32> = (0..rows).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..rows * stride).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut want = vec![0.5f32; cols];
        for (k, &xk) in x.iter().enumerate() {
            for (j, o) in want.iter_mut().enumerate() {
                *o += xk * w[k * stride + j];
            }
        }
        let mut fast = vec![0.5f32; cols];
        matvec_acc(&x, &w, stride, &mut fast);
        let mut plain = vec![0.5f32; cols];
        matvec_body::<false>(&x, &w, stride, &mut plain);
        for ((a, b), c) in fast.iter().zip(&plain).zip(&want) {
            assert!((a - c).abs() < 1e-5 && (b - c).abs() < 1e-5, "{a} {b} {c}");
        }
    }

    #[test]
    fn batched_matmul_equals_row_by_row() {
        // 6 rows (a group of 4 and 2 left over), k = 5, n = 40 (2 blocks of 16 and a tail).
        let (rows, k, n) = (6, 5, 40);
        let x: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.7).sin()).collect();
        let w: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.3).cos()).collect();
        let mut batched = vec![1.0f32; rows * n];
        matmul_acc(&x, &w, k, &mut batched);
        for r in 0..rows {
            let mut one = vec![1.0f32; n];
            matvec_acc(&x[r * k..(r + 1) * k], &w, n, &mut one);
            for (a, b) in batched[r * n..(r + 1) * n].iter().zip(&one) {
                assert!((a - b).abs() < 1e-5, "row {r}: {a} vs {b}");
            }
        }
    }
}
