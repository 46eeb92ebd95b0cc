//! The model's parameters: deterministic initialization and safetensors files.
//!
//! Matrices are stored as (in, out), so a dense layer is `x·W + b`. Tensor names:
//! `tok_emb` (vocab, d); per block i `blocks.i.ln1.{weight,bias}`,
//! `blocks.i.attn.qkv.{weight,bias}` (d, 3d), `blocks.i.attn.out.{weight,bias}` (d, d),
//! `blocks.i.ln2.{weight,bias}`, `blocks.i.mlp.fc.{weight,bias}` (d, d_ff),
//! `blocks.i.mlp.proj.{weight,bias}` (d_ff, d); `ln_f.{weight,bias}`. All f32.

use super::{Config, GptError};
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::BTreeMap;
use std::path::Path;

/// Standard deviation of the initial weights (GPT-2's).
const INIT_STD: f32 = 0.02;
/// File names inside a model directory.
const CONFIG_FILE: &str = "config.json";
const WEIGHTS_FILE: &str = "model.safetensors";

/// One transformer block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Block {
    pub(crate) ln1: (Array1<f32>, Array1<f32>),
    pub(crate) qkv: (Array2<f32>, Array1<f32>),
    pub(crate) out: (Array2<f32>, Array1<f32>),
    pub(crate) ln2: (Array1<f32>, Array1<f32>),
    pub(crate) fc: (Array2<f32>, Array1<f32>),
    pub(crate) proj: (Array2<f32>, Array1<f32>),
}

/// The Mini-GPT: its configuration and parameters. Shared by every thread (`&self`
/// everywhere); per-sequence state lives in [`super::Sequence`].
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub(crate) config: Config,
    pub(crate) tok_emb: Array2<f32>,
    /// `tok_emb` transposed: the tied LM head as a (d, vocab) matrix.
    pub(crate) head: Array2<f32>,
    pub(crate) head_bias: Array1<f32>,
    /// Sinusoidal positions (context, d).
    pub(crate) pos: Array2<f32>,
    pub(crate) blocks: Vec<Block>,
    pub(crate) ln_f: (Array1<f32>, Array1<f32>),
}

/// Every tensor's name and shape, in file order.
fn spec(c: &Config) -> Vec<(String, Vec<usize>)> {
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

/// Fixed sinusoidal position embeddings (Vaswani et al., 2017).
fn positions(c: &Config) -> Array2<f32> {
    Array2::from_shape_fn((c.context, c.d_model), |(p, i)| {
        let rate = 1.0 / 10_000f64.powf((2 * (i / 2)) as f64 / c.d_model as f64);
        let a = p as f64 * rate;
        (if i % 2 == 0 { a.sin() } else { a.cos() }) as f32
    })
}

impl Model {
    /// Builds a model from named tensors (flat, row-major), checking nothing beyond count.
    fn from_tensors(config: Config, mut t: BTreeMap<String, Vec<f32>>) -> Self {
        let mut take = |name: &str| t.remove(name).expect("checked by the caller");
        let m2 = |v: Vec<f32>, r: usize, c: usize| Array2::from_shape_vec((r, c), v).expect("shape checked");
        let (d, f) = (config.d_model, config.d_ff);
        let tok_emb = m2(take("tok_emb"), config.vocab, d);
        let blocks = (0..config.n_layer)
            .map(|i| {
                let mut g = |s: &str| take(&format!("blocks.{i}.{s}"));
                Block {
                    ln1: (g("ln1.weight").into(), g("ln1.bias").into()),
                    qkv: (m2(g("attn.qkv.weight"), d, 3 * d), g("attn.qkv.bias").into()),
                    out: (m2(g("attn.out.weight"), d, d), g("attn.out.bias").into()),
                    ln2: (g("ln2.weight").into(), g("ln2.bias").into()),
                    fc: (m2(g("mlp.fc.weight"), d, f), g("mlp.fc.bias").into()),
                    proj: (m2(g("mlp.proj.weight"), f, d), g("mlp.proj.bias").into()),
                }
            })
            .collect();
        let ln_f = (take("ln_f.weight").into(), take("ln_f.bias").into());
        let head = tok_emb.t().as_standard_layout().to_owned();
        Self { head_bias: Array1::zeros(config.vocab), pos: positions(&config), head, tok_emb, blocks, ln_f, config }
    }

    /// A model with random weights drawn from `seed`: N(0, 0.02²) matrices and embeddings,
    /// zero biases, unit LayerNorm gains. The same seed gives the same bits.
    pub fn init(config: &Config, seed: u64) -> Model {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, INIT_STD).expect("valid σ");
        let tensors = spec(config)
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let v = if shape.len() == 2 {
                    (0..n).map(|_| normal.sample(&mut rng)).collect()
                } else if name.ends_with(".weight") {
                    vec![1.0; n]
                } else {
                    vec![0.0; n]
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

    /// Memory of the parameters [bytes] (f32).
    pub fn weight_bytes(&self) -> usize {
        self.config.param_count() * std::mem::size_of::<f32>()
    }

    fn named(&self) -> Vec<(String, &[f32])> {
        fn s(a: &Array2<f32>) -> &[f32] {
            a.as_slice().expect("standard layout")
        }
        let mut out: Vec<(String, &[f32])> = vec![("tok_emb".into(), s(&self.tok_emb))];
        for (i, b) in self.blocks.iter().enumerate() {
            let p = |x: &str| format!("blocks.{i}.{x}");
            out.extend([
                (p("ln1.weight"), b.ln1.0.as_slice().expect("1-d")),
                (p("ln1.bias"), b.ln1.1.as_slice().expect("1-d")),
                (p("attn.qkv.weight"), s(&b.qkv.0)),
                (p("attn.qkv.bias"), b.qkv.1.as_slice().expect("1-d")),
                (p("attn.out.weight"), s(&b.out.0)),
                (p("attn.out.bias"), b.out.1.as_slice().expect("1-d")),
                (p("ln2.weight"), b.ln2.0.as_slice().expect("1-d")),
                (p("ln2.bias"), b.ln2.1.as_slice().expect("1-d")),
                (p("mlp.fc.weight"), s(&b.fc.0)),
                (p("mlp.fc.bias"), b.fc.1.as_slice().expect("1-d")),
                (p("mlp.proj.weight"), s(&b.proj.0)),
                (p("mlp.proj.bias"), b.proj.1.as_slice().expect("1-d")),
            ]);
        }
        out.push(("ln_f.weight".into(), self.ln_f.0.as_slice().expect("1-d")));
        out.push(("ln_f.bias".into(), self.ln_f.1.as_slice().expect("1-d")));
        out
    }

    /// Writes `config.json` and `model.safetensors` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), GptError> {
        let err = |path: &Path, e: &dyn std::fmt::Display| GptError::Weights { path: path.into(), reason: e.to_string() };
        std::fs::create_dir_all(dir).map_err(|e| err(dir, &e))?;
        let bytes: Vec<(String, Vec<u8>)> = self
            .named()
            .into_iter()
            .map(|(n, v)| (n, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
            .collect();
        let shapes: BTreeMap<String, Vec<usize>> = spec(&self.config).into_iter().collect();
        let views: Vec<(String, TensorView)> = bytes
            .iter()
            .map(|(n, b)| (n.clone(), TensorView::new(Dtype::F32, shapes[n].clone(), b).expect("sizes match")))
            .collect();
        let file = dir.join(WEIGHTS_FILE);
        let data = safetensors::serialize(views, None).map_err(|e| err(&file, &e))?;
        std::fs::write(&file, data).map_err(|e| err(&file, &e))?;
        let cfg = dir.join(CONFIG_FILE);
        let json = serde_json::to_string_pretty(&self.config).expect("config serializes");
        std::fs::write(&cfg, json + "\n").map_err(|e| err(&cfg, &e))
    }

    /// Reads a model directory, checking every tensor's name, shape and dtype.
    pub fn load(dir: &Path) -> Result<Model, GptError> {
        let cfg_path = dir.join(CONFIG_FILE);
        let bad = |path: &Path, reason: String| GptError::Weights { path: path.into(), reason };
        let text = std::fs::read_to_string(&cfg_path)
            .map_err(|e| bad(&cfg_path, format!("{e}; create it with `servesim model init --dir {}`", dir.display())))?;
        let config: Config = serde_json::from_str(&text).map_err(|e| bad(&cfg_path, format!("not a model config: {e}")))?;
        config.validate()?;
        let path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| bad(&path, e.to_string()))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(&path, format!("not a complete safetensors file ({e}); regenerate it with `servesim model init`")))?;
        let mut tensors = BTreeMap::new();
        let expected = spec(&config);
        for (name, shape) in &expected {
            let t = st.tensor(name).map_err(|_| bad(&path, format!("tensor `{name}` is missing")))?;
            if t.dtype() != Dtype::F32 {
                return Err(bad(&path, format!("tensor `{name}` is {:?}, expected F32", t.dtype())));
            }
            if t.shape() != shape.as_slice() {
                return Err(bad(&path, format!("tensor `{name}` has shape {:?}, expected {shape:?}", t.shape())));
            }
            let v: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            tensors.insert(name.clone(), v);
        }
        if let Some(extra) = st.names().into_iter().find(|n| !tensors.contains_key(*n)) {
            return Err(bad(&path, format!("unexpected tensor `{extra}`: the file does not match config.json")));
        }
        Ok(Self::from_tensors(config, tensors))
    }
}
