//! The inner loops of the matmuls — `x·W` for one row, for a batch of rows, and for the
//! long, narrow products of attention — with runtime CPU dispatch: compiled for AVX2 + FMA
//! and used when the CPU has them, plain code otherwise. The [`kernel!`] macro that does
//! the dispatch serves the other kernels too.

/// Whether this CPU runs the AVX2 + FMA versions (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_fma() -> bool {
    static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FMA.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// `a·b + c`, fused when compiled for FMA.
#[inline(always)]
pub(crate) fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
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
            if $crate::gpt::simd::has_fma() {
                // SAFETY: the CPU has AVX2 and FMA (checked by `has_fma`).
                return unsafe { $fma($($arg),*) };
            }
            $body::<false>($($arg),*)
        }
    };
}
pub(crate) use kernel;

/// Output columns kept in registers at once (8 AVX registers: independent FMA chains).
const BLOCK: usize = 64;
/// The narrower block: an attention head, a score span (both multiples of 16).
pub(crate) const SMALL: usize = 16;

/// `out += Σ_k x[k]·W[k, ..]` for a block of `B` output columns starting at `j`; rows of
/// `W` start every `stride` values. Returns `B`.
#[inline(always)]
fn block<const FUSED: bool, const B: usize>(
    x: &[f32],
    w: &[f32],
    stride: usize,
    j: usize,
    out: &mut [f32],
) -> usize {
    let mut acc = [0.0f32; B];
    acc.copy_from_slice(&out[j..j + B]);
    for (k, &xk) in x.iter().enumerate() {
        let wb = &w[k * stride + j..k * stride + j + B];
        for t in 0..B {
            acc[t] = madd::<FUSED>(xk, wb[t], acc[t]);
        }
    }
    out[j..j + B].copy_from_slice(&acc);
    B
}

/// `out += x·W` where row `k` of `W` is `w[k·stride ..][.. out.len()]`: output columns
/// accumulate in registers over all of `x`, in blocks as wide as fit (64, then one of 48,
/// 32 or 16: more independent FMA chains), and are stored once.
#[inline(always)]
fn matvec_body<const FUSED: bool>(x: &[f32], w: &[f32], stride: usize, out: &mut [f32]) {
    let n = out.len();
    let mut j = 0;
    while j + BLOCK <= n {
        j += block::<FUSED, BLOCK>(x, w, stride, j, out);
    }
    j += match (n - j) / SMALL {
        3 => block::<FUSED, { 3 * SMALL }>(x, w, stride, j, out),
        2 => block::<FUSED, { 2 * SMALL }>(x, w, stride, j, out),
        1 => block::<FUSED, SMALL>(x, w, stride, j, out),
        _ => 0,
    };
    for (k, &xk) in x.iter().enumerate() {
        if j < n {
            axpy_body::<FUSED>(xk, &w[k * stride + j..k * stride + n], &mut out[j..]);
        }
    }
}

/// Columns of a weight panel (see `packed.rs`): two AVX registers.
pub(crate) const PANEL: usize = 16;
/// Rows of `x` that share each load of a panel in [`matmul_body`].
const ROWS: usize = 4;

/// `out[g·PANEL ..][.. PANEL] += x·P_g` for one row of `x` and `G` full panels side by side:
/// 2·G independent accumulators, each panel a sequential stream.
#[inline(always)]
fn row_panels<const FUSED: bool, const G: usize>(x: &[f32], panels: &[f32], out: &mut [f32]) {
    let k = x.len();
    let ps: [&[f32]; G] = std::array::from_fn(|g| &panels[g * k * PANEL..(g + 1) * k * PANEL]);
    let mut acc = [[0.0f32; PANEL]; G];
    for (a, o) in acc.iter_mut().zip(out.chunks_exact(PANEL)) {
        a.copy_from_slice(o);
    }
    for (i, &xi) in x.iter().enumerate() {
        for (a, p) in acc.iter_mut().zip(&ps) {
            let wb = &p[i * PANEL..(i + 1) * PANEL];
            for t in 0..PANEL {
                a[t] = madd::<FUSED>(xi, wb[t], a[t]);
            }
        }
    }
    for (a, o) in acc.iter().zip(out.chunks_exact_mut(PANEL)) {
        o.copy_from_slice(a);
    }
}

/// `out += x·P` for one row and the last, narrower panel (`out.len()` columns).
#[inline(always)]
fn row_tail<const FUSED: bool>(x: &[f32], panel: &[f32], out: &mut [f32]) {
    let width = out.len();
    for (&xi, wb) in x.iter().zip(panel.chunks_exact(width)) {
        axpy_body::<FUSED>(xi, wb, out);
    }
}

/// `out += x·W` for one row, `W` packed with `n` columns: panels go 4, then 2, then 1 at a
/// time.
#[inline(always)]
fn row_body<const FUSED: bool>(x: &[f32], w: &[f32], n: usize, out: &mut [f32]) {
    let (k, full) = (x.len(), n / PANEL);
    let mut p = 0;
    while p + 4 <= full {
        row_panels::<FUSED, 4>(x, &w[p * k * PANEL..], &mut out[p * PANEL..(p + 4) * PANEL]);
        p += 4;
    }
    if p + 2 <= full {
        row_panels::<FUSED, 2>(x, &w[p * k * PANEL..], &mut out[p * PANEL..(p + 2) * PANEL]);
        p += 2;
    }
    if p < full {
        row_panels::<FUSED, 1>(x, &w[p * k * PANEL..], &mut out[p * PANEL..(p + 1) * PANEL]);
    }
    if full * PANEL < n {
        row_tail::<FUSED>(x, &w[full * k * PANEL..], &mut out[full * PANEL..n]);
    }
}

/// `out_r[.. PANEL] += x_r·P` for `R` rows and one full panel: every load of the panel
/// serves all rows.
#[inline(always)]
fn rows_panel<const FUSED: bool, const R: usize>(x: [&[f32]; R], panel: &[f32], out: [&mut [f32]; R]) {
    let mut acc = [[0.0f32; PANEL]; R];
    for (a, o) in acc.iter_mut().zip(&out) {
        a.copy_from_slice(&o[..PANEL]);
    }
    for (i, wb) in panel.chunks_exact(PANEL).enumerate() {
        for (a, xr) in acc.iter_mut().zip(&x) {
            let xi = xr[i];
            for t in 0..PANEL {
                a[t] = madd::<FUSED>(xi, wb[t], a[t]);
            }
        }
    }
    for (a, o) in acc.iter().zip(out) {
        o[..PANEL].copy_from_slice(a);
    }
}

/// [`rows_panel`] for the `R` rows of `x` (rows, k) and `out` (rows, n), at column `j`.
#[inline(always)]
fn group_panel<const FUSED: bool, const R: usize>(
    x: &[f32],
    panel: &[f32],
    k: usize,
    j: usize,
    out: &mut [f32],
) {
    let n = out.len() / R;
    let mut os = out.chunks_exact_mut(n);
    let o = std::array::from_fn(|_| &mut os.next().expect("R rows")[j..]);
    rows_panel::<FUSED, R>(std::array::from_fn(|u| &x[u * k..(u + 1) * k]), panel, o);
}

/// `out += x·W` for a batch: `x` is (rows, k) and `out` (rows, n), row-major; `W` (k, n) is
/// packed. Fewer than `ROWS` rows go one by one ([`row_body`]: more FMA chains per row);
/// more go panel by panel (it stays in L1), `ROWS` rows at a time and then the 1 to 3 left,
/// so a panel is read from L2 once per call. Every output sums over k in the same order
/// whatever the path, so a row's result does not depend on its batch.
#[inline(always)]
fn matmul_body<const FUSED: bool>(x: &[f32], w: &[f32], k: usize, n: usize, out: &mut [f32]) {
    let (rows, full) = (x.len() / k, n / PANEL);
    if rows < ROWS {
        for (xr, or) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            row_body::<FUSED>(xr, w, n, or);
        }
        return;
    }
    let done = rows / ROWS * ROWS;
    let (x_groups, x_left) = x.split_at(done * k);
    let (out_groups, out_left) = out.split_at_mut(done * n);
    for p in 0..full {
        let (panel, j) = (&w[p * k * PANEL..(p + 1) * k * PANEL], p * PANEL);
        for (xg, og) in x_groups.chunks_exact(k * ROWS).zip(out_groups.chunks_exact_mut(n * ROWS)) {
            group_panel::<FUSED, ROWS>(xg, panel, k, j, og);
        }
        match rows - done {
            3 => group_panel::<FUSED, 3>(x_left, panel, k, j, out_left),
            2 => group_panel::<FUSED, 2>(x_left, panel, k, j, out_left),
            1 => group_panel::<FUSED, 1>(x_left, panel, k, j, out_left),
            _ => {}
        }
    }
    if full * PANEL < n {
        for (xr, or) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            row_tail::<FUSED>(xr, &w[full * k * PANEL..], &mut or[full * PANEL..]);
        }
    }
}

/// Independent partial sums of [`long_body`]: enough to hide the FMA latency.
const PARTIALS: usize = 4;

/// `out += x·W` for a long `x` and a narrow `out` (attention's p·V: positions × head_dim):
/// [`matvec_body`] would run one dependency chain per output register over all of `x`;
/// here rows `k` go `PARTIALS` at a time into separate sums, added at the end.
#[inline(always)]
fn long_body<const FUSED: bool>(x: &[f32], w: &[f32], stride: usize, out: &mut [f32]) {
    let n = out.len();
    let mut j = 0;
    while j + SMALL <= n {
        let mut acc = [[0.0f32; SMALL]; PARTIALS];
        let mut ks = x.chunks_exact(PARTIALS).enumerate();
        for (g, xs) in &mut ks {
            for (u, (a, &xk)) in acc.iter_mut().zip(xs).enumerate() {
                let wb = &w[(g * PARTIALS + u) * stride + j..][..SMALL];
                for t in 0..SMALL {
                    a[t] = madd::<FUSED>(xk, wb[t], a[t]);
                }
            }
        }
        let done = x.len() / PARTIALS * PARTIALS;
        for (k, &xk) in x.iter().enumerate().skip(done) {
            axpy_body::<FUSED>(xk, &w[k * stride + j..][..SMALL], &mut acc[0]);
        }
        for (t, o) in out[j..j + SMALL].iter_mut().enumerate() {
            *o += acc.iter().map(|a| a[t]).sum::<f32>();
        }
        j += SMALL;
    }
    for (k, &xk) in x.iter().enumerate() {
        if j < n {
            axpy_body::<FUSED>(xk, &w[k * stride + j..k * stride + n], &mut out[j..]);
        }
    }
}

kernel! {
    /// `out += x·W` for a row-major batch `x` (rows, k), `W` (k, n) packed in panels,
    /// `out` (rows, n).
    fn matmul_acc / matmul_fma(x: &[f32], w: &[f32], k: usize, n: usize, out: &mut [f32]) = matmul_body
}

kernel! {
    /// `out += x·W`, where row `k` of `W` is `w[k·stride ..][.. out.len()]`.
    fn matvec_acc / matvec_fma(x: &[f32], w: &[f32], stride: usize, out: &mut [f32]) = matvec_body
}

kernel! {
    /// `out += x·W` for a long `x` and a narrow `out`; row `k` of `W` is
    /// `w[k·stride ..][.. out.len()]`.
    fn matvec_long / matvec_long_fma(x: &[f32], w: &[f32], stride: usize, out: &mut [f32]) = long_body
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
    fn long_products_agree_with_plain_loops() {
        // 51 rows (12 groups of 4 and 3 more), 37 columns (2 blocks of 16 and a tail).
        let (rows, cols, stride) = (51, 37, 40);
        let x: Vec<f32> = (0..rows).map(|i| (i as f32 * 0.13).sin()).collect();
        let w: Vec<f32> = (0..rows * stride).map(|i| (i as f32 * 0.05).cos()).collect();
        let mut want = vec![0.25f32; cols];
        for (k, &xk) in x.iter().enumerate() {
            for (j, o) in want.iter_mut().enumerate() {
                *o += xk * w[k * stride + j];
            }
        }
        let mut got = vec![0.25f32; cols];
        matvec_long(&x, &w, stride, &mut got);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn a_rows_product_does_not_depend_on_its_batch() {
        // Batches of 1 to 9 rows: one by one, groups of 4, and 1 to 3 left over; 117
        // columns: panels in groups of 4, 2 and 1, then a tail of 5.
        let (k, n) = (9, 117);
        let w = ndarray::Array2::from_shape_fn((k, n), |(i, j)| ((i * n + j) as f32 * 0.3).cos());
        let packed = crate::gpt::packed::Packed::new(w.view());
        let x = ndarray::Array2::from_shape_fn((9, k), |(r, i)| ((r * k + i) as f32 * 0.7).sin());
        let want = x.dot(&w) + 1.0;
        let alone: Vec<Vec<f32>> = (0..9)
            .map(|r| {
                let mut one = vec![1.0f32; n];
                packed.mul_acc(x.row(r).as_slice().unwrap(), &mut one);
                one
            })
            .collect();
        for (r, one) in alone.iter().enumerate() {
            for (a, b) in one.iter().zip(want.row(r)) {
                assert!((a - b).abs() < 1e-5, "row {r}: {a} vs {b}");
            }
        }
        for rows in 1..=9 {
            let mut batched = vec![1.0f32; rows * n];
            packed.mul_acc(&x.as_slice().unwrap()[..rows * k], &mut batched);
            for (r, one) in alone.iter().take(rows).enumerate() {
                assert_eq!(batched[r * n..(r + 1) * n], one[..], "row {r} of {rows}");
            }
        }
    }
}
