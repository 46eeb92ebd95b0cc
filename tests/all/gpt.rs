//! The Mini-GPT: size, exactness of the cached and batched paths, causality, hooks, files,
//! bad input, and an independent NumPy reference.

use servesim::gpt::{
    BOS, Config, GptError, KernelHooks, Model, NoHooks, SEP, Sequence, Tokenizer, Workspace,
};
use std::path::Path;
use std::sync::Arc;

/// Cached, batched and full computations agree to this (the bound).
const LOGIT_TOL: f32 = 1e-5;
/// The NumPy reference computes in f64 with exact tanh and exp; here f32 with fast ones.
const REFERENCE_TOL: f64 = 2e-5;

fn committed() -> Model {
    Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mini-gpt")).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Runs `seq` to the end with single steps.
fn finish(m: &Model, seq: &mut Sequence) {
    while !seq.is_finished() {
        m.step(seq, &mut NoHooks);
    }
}

#[test]
fn the_committed_model_is_the_lessons() {
    let m = committed();
    assert_eq!(m.config(), &Config::default());
    assert_eq!(m.config().param_count(), 103_680);
    assert_eq!(m.weight_bytes(), 414_720);
    // The committed weights are `servesim model init --seed 1`.
    assert_eq!(m, Model::init(&Config::default(), 1));
    fn shared<T: Send + Sync>() {}
    shared::<Model>();
}

#[test]
fn kv_cache_decoding_equals_full_recomputation() {
    let m = committed();
    let mut seq = m.start("the cat sat on the mat", 30, false, &mut NoHooks).unwrap();
    let mut cached = vec![seq.logits().to_vec()];
    while !seq.is_finished() {
        m.step(&mut seq, &mut NoHooks);
        if !seq.is_finished() {
            cached.push(seq.logits().to_vec());
        }
    }
    assert_eq!(seq.new_tokens(), 30);
    let (tokens, prompt) = (seq.tokens().to_vec(), seq.prompt_tokens());
    let full = m.logits_full(&tokens[..tokens.len() - 1]);
    assert_eq!(cached.len(), full.nrows() - (prompt - 1));
    for (i, c) in cached.iter().enumerate() {
        let d = max_diff(c, full.row(prompt - 1 + i).as_slice().unwrap());
        assert!(d <= LOGIT_TOL, "position {}: max |Δ logit| = {d}", prompt - 1 + i);
    }
}

#[test]
fn batched_step_equals_per_sequence_steps() {
    let m = committed();
    let prompts = ["a", "hello world", "the quick brown fox jumps", "0123456789 and more text"];
    let lens = [5, 12, 3, 9];
    let mut one: Vec<_> =
        prompts.iter().zip(lens).map(|(p, n)| m.start(p, n, false, &mut NoHooks).unwrap()).collect();
    let mut batch = one.clone();
    let mut ws = Workspace::default();
    for _ in 0..12 {
        for s in one.iter_mut() {
            m.step(s, &mut NoHooks);
        }
        let mut refs: Vec<_> = batch.iter_mut().collect();
        m.step_batch_in(&mut ws, &mut refs, &mut NoHooks);
        for (a, b) in one.iter().zip(&batch) {
            assert_eq!(a.tokens(), b.tokens());
            assert_eq!(a.is_finished(), b.is_finished());
            assert!(max_diff(a.logits().as_slice().unwrap(), b.logits().as_slice().unwrap()) <= LOGIT_TOL);
        }
    }
    assert!(batch.iter().all(|s| s.is_finished()));
    assert_eq!(batch.iter().map(|s| s.new_tokens()).collect::<Vec<_>>(), lens);
}

#[test]
fn sequences_may_join_and_leave_a_batch_between_steps() {
    // Continuous batching: a new sequence joins mid-way, finished ones stay in the slice or
    // are dropped; each ends exactly as it would alone.
    let m = committed();
    let alone = |p: &str, n: usize| {
        let mut s = m.start(p, n, false, &mut NoHooks).unwrap();
        finish(&m, &mut s);
        s
    };
    let mut ws = Workspace::default();
    let mut live = vec![
        m.start("first one", 4, false, &mut NoHooks).unwrap(),
        m.start("second", 8, false, &mut NoHooks).unwrap(),
    ];
    let mut done = Vec::new();
    for step in 0..10 {
        if step == 2 {
            live.push(m.start("a late arrival", 5, false, &mut NoHooks).unwrap());
        }
        let mut refs: Vec<&mut Sequence> = live.iter_mut().collect();
        m.step_batch_in(&mut ws, &mut refs, &mut NoHooks);
        let (fin, rest): (Vec<_>, Vec<_>) = live.into_iter().partition(|s| s.is_finished());
        done.extend(fin);
        live = rest;
    }
    assert!(live.is_empty());
    let texts: Vec<_> = done.iter().map(|s| s.tokens().to_vec()).collect();
    let want = [alone("first one", 4), alone("a late arrival", 5), alone("second", 8)];
    assert_eq!(texts, want.iter().map(|s| s.tokens().to_vec()).collect::<Vec<_>>());
}

#[test]
fn later_tokens_do_not_change_earlier_logits() {
    let m = committed();
    let a = m.logits_full(&[BOS, 10, 11, 12, 13, 14]);
    let b = m.logits_full(&[BOS, 10, 11, 40, 41, 42]);
    for p in 0..3 {
        assert_eq!(a.row(p), b.row(p), "position {p} saw the future");
    }
    assert!(max_diff(a.row(3).as_slice().unwrap(), b.row(3).as_slice().unwrap()) > 0.0);
}

/// Counts hook calls and checks that kernels never nest.
#[derive(Default)]
struct Count {
    kernels: usize,
    tokens: usize,
    inside: bool,
}

impl KernelHooks for Count {
    fn kernel_enter(&mut self) {
        assert!(!self.inside, "kernels nest");
        self.inside = true;
    }
    fn kernel_exit(&mut self) {
        assert!(self.inside, "exit without enter");
        self.inside = false;
        self.kernels += 1;
    }
    fn token_start(&mut self) {
        assert!(!self.inside, "a token starts inside a kernel");
        self.tokens += 1;
    }
}

#[test]
fn a_request_of_n_tokens_makes_n_times_kernels_per_token_kernel_calls() {
    let m = committed();
    let per_token = m.config().kernels_per_token();
    for n in [1, 2, 20] {
        let mut c = Count::default();
        let mut s = m.start("count the release points", n, false, &mut c).unwrap();
        while !s.is_finished() {
            m.step(&mut s, &mut c);
        }
        assert_eq!((c.kernels, c.tokens), (n * per_token, n), "{n} tokens");
    }
    // A batched step is one forward pass whatever B: the same kernels, one token start.
    let mut seqs: Vec<_> =
        (0..5).map(|i| m.start(&"x".repeat(i + 1), 3, false, &mut NoHooks).unwrap()).collect();
    let mut c = Count::default();
    m.step_batch(&mut seqs.iter_mut().collect::<Vec<_>>(), &mut c);
    assert_eq!((c.kernels, c.tokens), (per_token, 1));
    // Finished sequences cost nothing.
    seqs.iter_mut().for_each(|s| finish(&m, s));
    let mut c = Count::default();
    m.step_batch(&mut seqs.iter_mut().collect::<Vec<_>>(), &mut c);
    m.step(&mut seqs[0], &mut c);
    assert_eq!((c.kernels, c.tokens), (0, 0));
}

#[test]
fn correct_reports_counts_and_a_timing_breakdown() {
    let m = committed();
    let out = m.correct("she dont like apples", 20).unwrap();
    let mut seq = m.start("she dont like apples", 20, true, &mut NoHooks).unwrap();
    finish(&m, &mut seq);
    assert_eq!(
        (out.text.as_str(), out.prompt_tokens, out.new_tokens),
        (seq.text().as_str(), 22, seq.new_tokens())
    );
    assert!(!out.clamped);
    assert!(out.timing.matmul > std::time::Duration::ZERO && out.timing.other > std::time::Duration::ZERO);
}

#[test]
fn one_model_serves_many_threads() {
    let m = Arc::new(committed());
    let want = m.correct("many threads, one model", 15).unwrap().text;
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || m.correct("many threads, one model", 15).unwrap().text)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
}

/// Every tensor of a safetensors file: name, shape, and its f32 values as bits.
fn tensor_bits(bytes: &[u8]) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
            let bits = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).to_bits())
                .collect();
            (name, t.shape().to_vec(), bits)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn save_load_round_trip_is_bit_exact_and_init_is_deterministic() {
    let m = Model::init(&Config::default(), 42);
    assert_eq!(m, Model::init(&Config::default(), 42));
    assert_ne!(m, Model::init(&Config::default(), 43));
    // The committed model, loaded and saved again, then loaded and saved once more.
    let committed_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mini-gpt");
    let scratch = (crate::scratch("gpt-roundtrip-1"), crate::scratch("gpt-roundtrip-2"));
    let (once, twice) = (scratch.0.path(), scratch.1.path());
    committed().save(once).unwrap();
    Model::load(once).unwrap().save(twice).unwrap();
    let read = |dir: &Path, file: &str| std::fs::read(dir.join(file)).unwrap();
    let want = read(&committed_dir, "model.safetensors");
    let want_bits = tensor_bits(&want);
    // tok_emb, 12 per block, ln_f's gain and bias (the head is tied, positions are fixed).
    assert_eq!(want_bits.len(), 1 + 12 * Config::default().n_layer + 2, "every tensor is in the file");
    for dir in [once, twice] {
        // Each tensor's values are the same bits (-0.0 and NaN payloads included)…
        for (w, g) in want_bits.iter().zip(tensor_bits(&read(dir, "model.safetensors"))) {
            assert_eq!((&w.0, &w.1), (&g.0, &g.1), "{}", dir.display());
            let diff = w.2.iter().zip(&g.2).position(|(a, b)| a != b);
            assert_eq!(diff, None, "{}: tensor {} differs at element {diff:?}", dir.display(), w.0);
        }
        // …and the files are the committed ones, byte for byte.
        assert!(read(dir, "model.safetensors") == want, "{}: model.safetensors differs", dir.display());
        assert_eq!(read(dir, "config.json"), read(&committed_dir, "config.json"), "{}", dir.display());
    }
}

#[test]
fn logits_match_the_independent_numpy_reference() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/mini_gpt_logits.json");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let tokens: Vec<u32> =
        r["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
    let mut ours = vec![BOS];
    ours.extend(Tokenizer.encode(r["text"].as_str().unwrap()));
    ours.push(SEP);
    assert_eq!(ours, tokens, "tokenizers agree");
    let logits = committed().logits_full(&tokens);
    let want = r["logits"].as_array().unwrap();
    assert_eq!(want.len(), tokens.len());
    for (p, row) in want.iter().enumerate() {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), logits.ncols());
        for (j, v) in row.iter().enumerate() {
            let (got, want) = (f64::from(logits[[p, j]]), v.as_f64().unwrap());
            assert!((got - want).abs() <= REFERENCE_TOL, "logit [{p}, {j}]: {got} vs NumPy {want}");
        }
    }
}

#[test]
fn bad_input_has_documented_behaviour() {
    let m = committed();
    // Empty or all-whitespace prompts are refused.
    for empty in ["", "   ", "\n\t"] {
        assert!(matches!(m.correct(empty, 5), Err(GptError::EmptyPrompt)), "{empty:?}");
    }
    // Too long for the context: refused, naming the limit; the limit itself is accepted.
    let long = "a".repeat(m.max_prompt_chars() + 1);
    let e = m.correct(&long, 5).unwrap_err();
    assert!(e.to_string().contains(&format!("at most {}", m.max_prompt_chars())), "{e}");
    let at_limit = m.correct(&"a".repeat(m.max_prompt_chars()), 5).unwrap();
    assert_eq!((at_limit.new_tokens, at_limit.clamped), (1, true));
    // Out-of-vocabulary characters are mapped (case folded, the rest to <unk>), not refused.
    let odd = "Ünïcödé “Quotes” ✓";
    assert_eq!(m.correct(odd, 3).unwrap().prompt_tokens, 2 + odd.chars().count());
    assert_eq!(Tokenizer.encode("ABC"), Tokenizer.encode("abc"));
    // A huge max_new_tokens is clamped to the context, and says so.
    let mut seq = m.start("hi", usize::MAX, false, &mut NoHooks).unwrap();
    assert!(seq.clamped());
    assert_eq!(seq.max_new_tokens(), m.config().context - 4);
    finish(&m, &mut seq);
    assert_eq!(seq.tokens().len(), m.config().context);
    // Zero new tokens: an empty continuation.
    let none = m.correct("hi", 0).unwrap();
    assert_eq!((none.text.as_str(), none.new_tokens), ("", 0));
}

#[test]
fn broken_weight_files_are_refused_clearly() {
    let scratch = crate::scratch("gpt-broken");
    let dir = scratch.path();
    let load_err = |dir: &Path| Model::load(dir).unwrap_err().to_string();
    committed().save(dir).unwrap();
    let file = dir.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    // Truncated.
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(dir);
    assert!(e.contains("model.safetensors") && e.contains("not a complete safetensors file"), "{e}");
    // A config that does not match the tensors: a wrong shape, a missing tensor.
    std::fs::write(&file, &bytes).unwrap();
    let write_cfg =
        |c: Config| std::fs::write(dir.join("config.json"), serde_json::to_string(&c).unwrap()).unwrap();
    write_cfg(Config { d_ff: 128, ..Config::default() });
    assert!(load_err(dir).contains("has shape [64, 256], expected [64, 128]"));
    write_cfg(Config { n_layer: 3, ..Config::default() });
    assert!(load_err(dir).contains("tensor `blocks.2.ln1.weight` is missing"));
    write_cfg(Config { n_layer: 1, ..Config::default() });
    assert!(load_err(dir).contains("unexpected tensor `blocks.1."));
    write_cfg(Config { n_head: 3, ..Config::default() });
    assert!(load_err(dir).contains("config.json: config: n_head (3) must divide d_model (64)"));
    // A wrong dtype.
    write_cfg(Config::default());
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f64_data = vec![0u8; 56 * 64 * 8];
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| match n.as_str() {
            "tok_emb" => (
                n,
                safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![56, 64], &f64_data)
                    .unwrap(),
            ),
            _ => (n, t),
        })
        .collect();
    std::fs::write(&file, safetensors::serialize(views, None).unwrap()).unwrap();
    assert!(load_err(dir).contains("tensor `tok_emb` is F64, expected F32"));
    // No model at all.
    std::fs::remove_dir_all(dir).unwrap();
    assert!(load_err(dir).contains("servesim model init"));
}
