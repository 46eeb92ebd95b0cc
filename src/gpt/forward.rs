//! The forward pass over a set of rows — each a token at a position of one sequence — shared
//! by the prefill, the single step and the batched step; the KV cache; scratch buffers.
//!
//! ```text
//!  rows ─► embed ─► [ LN ─► QKV ─► store K,V ─► scores ─► softmax ─► ·V ─► out (+x)
//!                     LN ─► fc ─► GELU ─► proj (+x) ] × n_layer ─► LN ─► head ─► logits
//! ```
//!
//! Dense layers run once over all rows (one matmul of B rows per weight matrix); attention
//! runs per row over its own sequence's cache, positions `0..=pos`, so sequences of
//! different lengths share a step.

use super::hooks::KernelHooks;
use super::kernels::{dense, dense_add, gelu, layer_norm, slice, softmax};
use super::simd::{SMALL, matvec_acc, matvec_long};
use super::{Config, Model, Sequence};

/// One row of a forward pass: `token` at position `pos` of sequence `seq`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub(crate) token: u32,
    pub(crate) pos: usize,
    pub(crate) seq: usize,
}

/// Keys and values of every position of one sequence, for every layer.
#[derive(Debug, Clone)]
pub(crate) struct KvCache {
    /// Positions held: the sequence's prompt plus its new tokens (at most the context),
    /// rounded up to a multiple of 16 so that score spans are whole blocks.
    cap: usize,
    head_dim: usize,
    /// Keys transposed, (layer, head, head_dim, cap): a head's scores over all positions
    /// are one vector–matrix product.
    k: Vec<f32>,
    /// Values, (layer, head, cap, head_dim).
    v: Vec<f32>,
}

impl KvCache {
    /// An empty cache for `positions` positions.
    pub(crate) fn new(c: &Config, positions: usize) -> Self {
        let cap = positions.next_multiple_of(SMALL);
        let len = c.n_layer * c.d_model * cap;
        Self { cap, head_dim: c.head_dim(), k: vec![0.0; len], v: vec![0.0; len] }
    }

    /// Where head `h` of layer `l` starts (the same offset in `k` and `v`).
    fn offset(&self, l: usize, h: usize, n_head: usize) -> usize {
        (l * n_head + h) * self.head_dim * self.cap
    }

    /// Stores position `pos`'s keys and values (all heads, `d_model` wide each).
    fn store(&mut self, l: usize, pos: usize, keys: &[f32], values: &[f32]) {
        let (hd, cap) = (self.head_dim, self.cap);
        let n_head = keys.len() / hd;
        for h in 0..n_head {
            let at = self.offset(l, h, n_head);
            for (i, &kv) in keys[h * hd..(h + 1) * hd].iter().enumerate() {
                self.k[at + i * cap + pos] = kv;
            }
            self.v[at + pos * hd..][..hd].copy_from_slice(&values[h * hd..(h + 1) * hd]);
        }
    }
}

/// Activations of one forward pass, row-major, sized for a number of rows. They grow to the
/// largest batch seen and never shrink, so reusing them allocates nothing per step.
#[derive(Debug, Clone, Default)]
pub(crate) struct Buffers {
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    mlp: Vec<f32>,
    pub(crate) logits: Vec<f32>,
    scores: Vec<f32>,
}

impl Buffers {
    /// Buffers for one row at any position: a sequence's, so its steps never reallocate.
    pub(crate) fn single(c: &Config) -> Self {
        let mut b = Self::default();
        b.fit(c, 1, c.context.next_multiple_of(SMALL));
        b
    }

    /// Grows the buffers to `rows` rows with score rows `width` wide.
    fn fit(&mut self, c: &Config, rows: usize, width: usize) {
        let grow = |v: &mut Vec<f32>, w: usize| {
            if v.len() < rows * w {
                v.resize(rows * w, 0.0);
            }
        };
        grow(&mut self.x, c.d_model);
        grow(&mut self.h, c.d_model);
        grow(&mut self.qkv, 3 * c.d_model);
        grow(&mut self.att, c.d_model);
        grow(&mut self.mlp, c.d_ff);
        grow(&mut self.logits, c.vocab);
        grow(&mut self.scores, c.n_head * width);
    }
}

impl Model {
    /// The transformer on `rows`: writes their keys and values into their sequences'
    /// caches and their logits into `b.logits` (row i at `i·vocab`).
    pub(crate) fn forward(
        &self,
        rows: &[Row],
        seqs: &mut [&mut Sequence],
        b: &mut Buffers,
        hooks: &mut impl KernelHooks,
    ) {
        let c = &self.config;
        let n = rows.len();
        // Score rows as wide as the longest span of this pass (whole blocks).
        let width = rows.iter().map(|r| r.pos + 1).max().unwrap_or(1).next_multiple_of(SMALL);
        b.fit(c, n, width);
        let d = c.d_model;
        let x = &mut b.x[..n * d];
        let h = &mut b.h[..n * d];
        let qkv = &mut b.qkv[..n * 3 * d];
        let att = &mut b.att[..n * d];
        let mlp = &mut b.mlp[..n * c.d_ff];
        self.embed(rows, x);
        for (l, blk) in self.blocks.iter().enumerate() {
            layer_norm(x, slice(&blk.ln1.g), slice(&blk.ln1.b), h);
            dense(h, &blk.qkv.w, Some(&blk.qkv.b), qkv, hooks);
            for (r, row) in rows.iter().zip(qkv.chunks_exact(3 * d)) {
                seqs[r.seq].cache.store(l, r.pos, &row[d..2 * d], &row[2 * d..]);
            }
            self.attention(l, rows, seqs, qkv, &mut b.scores, width, att, hooks);
            dense_add(att, &blk.out.w, &blk.out.b, x, hooks);
            layer_norm(x, slice(&blk.ln2.g), slice(&blk.ln2.b), h);
            dense(h, &blk.fc.w, Some(&blk.fc.b), mlp, hooks);
            gelu(mlp);
            dense_add(mlp, &blk.proj.w, &blk.proj.b, x, hooks);
        }
        layer_norm(x, slice(&self.ln_f.g), slice(&self.ln_f.b), h);
        dense(h, &self.head, None, &mut b.logits[..n * c.vocab], hooks);
    }

    /// Token embedding plus sinusoidal position, per row.
    fn embed(&self, rows: &[Row], x: &mut [f32]) {
        for (xr, r) in x.chunks_exact_mut(self.config.d_model).zip(rows) {
            let (t, p) = (self.tok_emb.row(r.token as usize), self.pos.row(r.pos));
            for ((o, t), p) in xr.iter_mut().zip(t).zip(p) {
                *o = t + p;
            }
        }
    }

    /// Causal multi-head attention of every row over its own sequence's cache, positions
    /// `0..=pos`: scores (q·Kᵀ) and weighted values (p·V) are one kernel each, as a batched
    /// matmul over heads would be in NumPy. Scores are computed over `pos + 1` rounded up to
    /// a whole block (wide blocks run more FMA chains); the padding is set to −∞ before the
    /// softmax, so it weighs nothing, and p·V reads only `0..=pos`.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        l: usize,
        rows: &[Row],
        seqs: &[&mut Sequence],
        qkv: &[f32],
        scores: &mut [f32],
        width: usize,
        out: &mut [f32],
        hooks: &mut impl KernelHooks,
    ) {
        let (d, nh, hd) = (self.config.d_model, self.config.n_head, self.config.head_dim());
        let span = |i: usize, h: usize, pos: usize| {
            let at = (i * nh + h) * width;
            at..at + (pos + 1).next_multiple_of(SMALL)
        };
        hooks.kernel_enter();
        for (i, r) in rows.iter().enumerate() {
            let cache = &seqs[r.seq].cache;
            let q = &qkv[i * 3 * d..][..d];
            for h in 0..nh {
                let sc = &mut scores[span(i, h, r.pos)];
                sc.fill(0.0);
                matvec_acc(&q[h * hd..(h + 1) * hd], &cache.k[cache.offset(l, h, nh)..], cache.cap, sc);
            }
        }
        hooks.kernel_exit();
        let scale = 1.0 / (hd as f32).sqrt();
        for (i, r) in rows.iter().enumerate() {
            for h in 0..nh {
                let sc = &mut scores[span(i, h, r.pos)];
                sc[r.pos + 1..].fill(f32::NEG_INFINITY);
                softmax(sc, scale);
            }
        }
        hooks.kernel_enter();
        for ((i, r), o) in rows.iter().enumerate().zip(out.chunks_exact_mut(d)) {
            let cache = &seqs[r.seq].cache;
            o.fill(0.0);
            for (h, oh) in o.chunks_exact_mut(hd).enumerate() {
                let p = &scores[span(i, h, r.pos)][..=r.pos];
                matvec_long(p, &cache.v[cache.offset(l, h, nh)..], hd, oh);
            }
        }
        hooks.kernel_exit();
    }
}
