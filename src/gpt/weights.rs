//! The model's parameters, their names and shapes, and their deterministic initialization.
//!
//! Matrices are (in, out), so a dense layer is `x·W + b`. Tensor names:
//! `tok_emb` (vocab, d); per block i `blocks.i.ln1.{weight,bias}`,
//! `blocks.i.attn.qkv.{weight,bias}` (d, 3d), `blocks.i.attn.out.{weight,bias}` (d, d),
//! `blocks.i.ln2.{weight,bias}`, `blocks.i.mlp.fc.{weight,bias}` (d, d_ff),
//! `blocks.i.mlp.proj.{weight,bias}` (d_ff, d); `ln_f.{weight,bias}`. All f32. The LM head
//! is `tok_emb` transposed (tied, no bias); positions are sinusoidal (no parameters).

use super::Config;
use super::packed::Packed;
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::collections::BTreeMap;

/// Standard deviation of the initial matrices, embeddings and biases (GPT-2's).
const INIT_STD: f32 = 0.02;
/// Standard deviation of the initial LayerNorm gains (around 1) and biases.
const NORM_STD: f32 = 0.1;

/// A dense layer `x·W + b`, its matrix packed for the kernels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dense {
    pub(crate) w: Packed,
    pub(crate) b: Array1<f32>,
}

/// A LayerNorm's gain and bias.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Norm {
    pub(crate) g: Array1<f32>,
    pub(crate) b: Array1<f32>,
}

/// One transformer block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Block {
    pub(crate) ln1: Norm,
    pub(crate) qkv: Dense,
    pub(crate) out: Dense,
    pub(crate) ln2: Norm,
    pub(crate) fc: Dense,
    pub(crate) proj: Dense,
}

/// The Mini-GPT: its configuration and parameters. Immutable once built, so one
/// `Arc<Model>` serves every thread (`&self` everywhere); per-sequence state lives in
/// [`super::Sequence`].
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub(crate) config: Config,
    pub(crate) tok_emb: Array2<f32>,
    /// The tied LM head: `tok_emb` transposed, (d, vocab), packed.
    pub(crate) head: Packed,
    /// Sinusoidal positions (context, d).
    pub(crate) pos: Array2<f32>,
    pub(crate) blocks: Vec<Block>,
    pub(crate) ln_f: Norm,
}

/// Every tensor's name and shape, in file order.
pub(crate) fn spec(c: &Config) -> Vec<(String, Vec<usize>)> {
    let (d, f) = (c.d_model, c.d_ff);
    let mut out = vec![("tok_emb".to_string(), vec![c.vocab, d])];
    for i in 0..c.n_layer {
        let p = |s: &str| format!("blocks.{i}.{s}");
        out.extend([
            (p("ln1.weight"), vec![d]),
            (p("ln1.bias"), vec![d]),
            (p("attn.qkv.weight"), vec![d, 3 * d]),
            (p("attn.qkv.bias"), vec![3 * d]),
            (p("attn.out.weight"), vec![d, d]),
            (p("attn.out.bias"), vec![d]),
            (p("ln2.weight"), vec![d]),
            (p("ln2.bias"), vec![d]),
            (p("mlp.fc.weight"), vec![d, f]),
            (p("mlp.fc.bias"), vec![f]),
            (p("mlp.proj.weight"), vec![f, d]),
            (p("mlp.proj.bias"), vec![d]),
        ]);
    }
    out.push(("ln_f.weight".into(), vec![d]));
    out.push(("ln_f.bias".into(), vec![d]));
    out
}

/// For a LayerNorm tensor, its neutral value (1 for a gain, 0 for a bias); else `None`.
fn is_norm(name: &str) -> Option<f32> {
    let norm = name.starts_with("ln_f.") || name.contains(".ln1.") || name.contains(".ln2.");
    norm.then_some(if name.ends_with(".weight") { 1.0 } else { 0.0 })
}

/// Fixed sinusoidal position embeddings (Vaswani et al., 2017, §3.5).
fn positions(c: &Config) -> Array2<f32> {
    Array2::from_shape_fn((c.context, c.d_model), |(p, i)| {
        let rate = 1.0 / 10_000f64.powf((2 * (i / 2)) as f64 / c.d_model as f64);
        let a = p as f64 * rate;
        (if i % 2 == 0 { a.sin() } else { a.cos() }) as f32
    })
}

impl Model {
    /// Builds a model from its named tensors (flat, row-major, shapes as in [`spec`]:
    /// the caller checks them).
    pub(crate) fn from_tensors(config: Config, mut t: BTreeMap<String, Vec<f32>>) -> Self {
        let mut take = |name: &str| t.remove(name).expect("checked by the caller");
        let (d, f) = (config.d_model, config.d_ff);
        let tok_emb = Array2::from_shape_vec((config.vocab, d), take("tok_emb")).expect("shape checked");
        let blocks = (0..config.n_layer)
            .map(|i| {
                let mut g = |s: &str| take(&format!("blocks.{i}.{s}"));
                let mut norm =
                    |s: &str| Norm { g: g(&format!("{s}.weight")).into(), b: g(&format!("{s}.bias")).into() };
                let (ln1, ln2) = (norm("ln1"), norm("ln2"));
                let mut dense = |s: &str, rows: usize, cols: usize| {
                    let w = Array2::from_shape_vec((rows, cols), g(&format!("{s}.weight")))
                        .expect("shape checked");
                    Dense { w: Packed::new(w.view()), b: g(&format!("{s}.bias")).into() }
                };
                let (qkv, out) = (dense("attn.qkv", d, 3 * d), dense("attn.out", d, d));
                let (fc, proj) = (dense("mlp.fc", d, f), dense("mlp.proj", f, d));
                Block { ln1, qkv, out, ln2, fc, proj }
            })
            .collect();
        let ln_f = Norm { g: take("ln_f.weight").into(), b: take("ln_f.bias").into() };
        let head = Packed::new(tok_emb.t());
        Self { pos: positions(&config), head, tok_emb, blocks, ln_f, config }
    }

    /// The named tensors (flat, row-major), in file order.
    pub(crate) fn tensors(&self) -> Vec<(String, Vec<f32>)> {
        let v = |a: &Array1<f32>| a.to_vec();
        let m = |p: &Packed| p.unpack().into_raw_vec_and_offset().0;
        let mut out = vec![("tok_emb".to_string(), self.tok_emb.iter().copied().collect())];
        for (i, b) in self.blocks.iter().enumerate() {
            let p = |x: &str| format!("blocks.{i}.{x}");
            out.extend([
                (p("ln1.weight"), v(&b.ln1.g)),
                (p("ln1.bias"), v(&b.ln1.b)),
                (p("attn.qkv.weight"), m(&b.qkv.w)),
                (p("attn.qkv.bias"), v(&b.qkv.b)),
                (p("attn.out.weight"), m(&b.out.w)),
                (p("attn.out.bias"), v(&b.out.b)),
                (p("ln2.weight"), v(&b.ln2.g)),
                (p("ln2.bias"), v(&b.ln2.b)),
                (p("mlp.fc.weight"), m(&b.fc.w)),
                (p("mlp.fc.bias"), v(&b.fc.b)),
                (p("mlp.proj.weight"), m(&b.proj.w)),
                (p("mlp.proj.bias"), v(&b.proj.b)),
            ]);
        }
        out.push(("ln_f.weight".into(), v(&self.ln_f.g)));
        out.push(("ln_f.bias".into(), v(&self.ln_f.b)));
        out
    }

    /// A model with random weights drawn from `seed` (xoshiro256++): matrices, embeddings
    /// and biases N(0, 0.02²); LayerNorm gains 1 + N(0, 0.1²) and biases N(0, 0.1²). Biases
    /// and LayerNorm parameters are drawn rather than left at 0 and 1 so that every tensor
    /// moves the logits, and a test against them notices any one mishandled. The same seed
    /// gives the same bits.
    ///
    /// # Panics
    ///
    /// If `config` is not valid ([`Config::validate`]).
    pub fn init(config: &Config, seed: u64) -> Model {
        if let Err(e) = config.validate() {
            panic!("Model::init: {e}");
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let (dense, norm) = (Normal::new(0.0f32, INIT_STD), Normal::new(0.0f32, NORM_STD));
        let (dense, norm) = (dense.expect("valid σ"), norm.expect("valid σ"));
        let tensors = spec(config)
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let v = match is_norm(&name) {
                    Some(mean) => (0..n).map(|_| mean + norm.sample(&mut rng)).collect(),
                    None => (0..n).map(|_| dense.sample(&mut rng)).collect(),
                };
                (name, v)
            })
            .collect();
        Self::from_tensors(*config, tensors)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Memory of the parameters (bytes) (f32): what each worker process holds a copy of.
    pub fn weight_bytes(&self) -> usize {
        self.config.param_count() * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the NumPy reference test allows (`REFERENCE_TOL` in `tests/all/gpt.rs`; the
    /// worst logit there is ~5e-7 off).
    const REFERENCE_TOL: f32 = 2e-5;

    #[test]
    fn every_tensor_moves_the_logits_beyond_the_reference_tolerance() {
        // So the golden-logit test would catch any one tensor ignored or misread: resetting
        // it (matrices and biases to 0, gains to 1) moves some logit by ≫ the tolerance.
        let c = Config::default();
        let m = Model::init(&c, 1);
        let tokens = [1, 25, 13, 10, 5, 22, 26, 14, 2];
        let base = m.logits_full(&tokens);
        for (name, _) in spec(&c) {
            let mut t: BTreeMap<String, Vec<f32>> = m.tensors().into_iter().collect();
            t.get_mut(&name).unwrap().fill(is_norm(&name).unwrap_or(0.0));
            let moved = Model::from_tensors(c, t).logits_full(&tokens) - &base;
            let d = moved.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(d > 10.0 * REFERENCE_TOL, "resetting {name} moves the logits by only {d}");
        }
    }

    #[test]
    fn tensors_round_trip() {
        let m = Model::init(&Config::default(), 3);
        let t: BTreeMap<String, Vec<f32>> = m.tensors().into_iter().collect();
        assert_eq!(Model::from_tensors(*m.config(), t), m);
    }
}
