//! The Mini-GPT: size, exactness of the cached and batched paths, causality, files, and an
//! independent NumPy reference.

use servesim::gpt::{BOS, Config, GptError, Model, NoHooks, SEP, Tokenizer};
use std::path::{Path, PathBuf};

/// Cached, batched and full computations agree to this (f32 arithmetic in other orders).
const LOGIT_TOL: f32 = 1e-5;
/// The NumPy reference computes in f64; f32 here.
const REFERENCE_TOL: f64 = 1e-4;

fn committed() -> Model {
    Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mini-gpt")).unwrap()
}

fn max_diff(a: ndarray::ArrayView1<f32>, b: ndarray::ArrayView1<f32>) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("servesim-gpt-{name}-{}", std::process::id()))
}

#[test]
fn the_committed_model_is_the_lessons() {
    let m = committed();
    assert_eq!(m.config(), &Config::default());
    assert_eq!(m.config().param_count(), 103_680);
    assert_eq!(m.weight_bytes(), 414_720);
    // The committed weights are `servesim model init --seed 1`.
    assert_eq!(m, Model::init(&Config::default(), 1));
}

#[test]
fn kv_cache_decoding_equals_full_recomputation() {
    let m = committed();
    let mut seq = m.start("the cat sat on the mat", 30, false, &mut NoHooks).unwrap();
    let mut cached = vec![seq.logits().clone()];
    while !seq.is_finished() {
        m.step(&mut seq, &mut NoHooks);
        if !seq.is_finished() {
            cached.push(seq.logits().clone());
        }
    }
    assert_eq!(seq.new_tokens(), 30);
    let tokens = seq.tokens().to_vec();
    let prompt = seq.prompt_tokens();
    let full = m.logits_full(&tokens[..tokens.len() - 1]);
    for (i, c) in cached.iter().enumerate() {
        let d = max_diff(c.view(), full.row(prompt - 1 + i));
        assert!(d <= LOGIT_TOL, "position {}: max |Δ logit| = {d}", prompt - 1 + i);
    }
}

#[test]
fn batched_step_equals_per_sequence_steps() {
    let m = committed();
    let prompts = ["a", "hello world", "the quick brown fox jumps", "0123456789 and more text"];
    let lens = [5, 12, 3, 9];
    let mut one: Vec<_> = prompts.iter().zip(lens).map(|(p, n)| m.start(p, n, false, &mut NoHooks).unwrap()).collect();
    let mut batch = one.clone();
    for _ in 0..12 {
        for s in one.iter_mut() {
            m.step(s, &mut NoHooks);
        }
        let mut refs: Vec<_> = batch.iter_mut().collect();
        m.step_batch(&mut refs, &mut NoHooks);
        for (a, b) in one.iter().zip(&batch) {
            assert_eq!(a.text(), b.text());
            assert_eq!(a.is_finished(), b.is_finished());
            assert!(max_diff(a.logits().view(), b.logits().view()) <= LOGIT_TOL);
        }
    }
    assert!(batch.iter().all(|s| s.is_finished()));
    assert_eq!(batch.iter().map(|s| s.new_tokens()).collect::<Vec<_>>(), lens);
}

#[test]
fn later_tokens_do_not_change_earlier_logits() {
    let m = committed();
    let a = m.logits_full(&[BOS, 10, 11, 12, 13, 14]);
    let b = m.logits_full(&[BOS, 10, 11, 40, 41, 42]);
    for p in 0..3 {
        assert_eq!(a.row(p), b.row(p), "position {p} saw the future");
    }
    assert!(max_diff(a.row(3), b.row(3)) > 0.0);
}

#[test]
fn save_load_round_trip_is_bit_exact_and_init_is_deterministic() {
    let m = Model::init(&Config::default(), 42);
    assert_eq!(m, Model::init(&Config::default(), 42));
    assert_ne!(m, Model::init(&Config::default(), 43));
    let dir = tmp("roundtrip");
    m.save(&dir).unwrap();
    assert_eq!(Model::load(&dir).unwrap(), m);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn logits_match_the_independent_numpy_reference() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/mini_gpt_logits.json");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let tokens: Vec<u32> = r["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
    let mut ours = vec![BOS];
    ours.extend(Tokenizer.encode(r["text"].as_str().unwrap()));
    ours.push(SEP);
    assert_eq!(ours, tokens, "tokenizers agree");
    let logits = committed().logits_full(&tokens);
    let want = r["logits"].as_array().unwrap();
    assert_eq!(want.len(), tokens.len());
    for (p, row) in want.iter().enumerate() {
        for (j, v) in row.as_array().unwrap().iter().enumerate() {
            let (got, want) = (f64::from(logits[[p, j]]), v.as_f64().unwrap());
            assert!((got - want).abs() <= REFERENCE_TOL, "logit [{p}, {j}]: {got} vs NumPy {want}");
        }
    }
}

#[test]
fn bad_input_has_documented_behaviour() {
    let m = committed();
    // Empty (or all-whitespace-free nothing) prompts are refused.
    assert!(matches!(m.correct("", 5), Err(GptError::EmptyPrompt)));
    // Too long for the context: refused with the limit.
    let long = "a".repeat(m.max_prompt_chars() + 1);
    let e = m.correct(&long, 5).unwrap_err();
    assert!(e.to_string().contains(&format!("at most {}", m.max_prompt_chars())), "{e}");
    assert!(m.correct(&"a".repeat(m.max_prompt_chars()), 5).is_ok());
    // Out-of-vocabulary characters are mapped, not refused.
    let out = m.correct("Ünïcödé “quotes” ✓", 3).unwrap();
    assert_eq!(out.prompt_tokens, 2 + "Ünïcödé “quotes” ✓".chars().count());
    // A huge max_new_tokens is clamped to the context, and says so.
    let mut seq = m.start("hi", usize::MAX, false, &mut NoHooks).unwrap();
    assert!(seq.clamped());
    assert_eq!(seq.max_new_tokens(), m.config().context - 4);
    while !seq.is_finished() {
        m.step(&mut seq, &mut NoHooks);
    }
    assert_eq!(seq.new_tokens(), m.config().context - 4);
}

#[test]
fn broken_weight_files_are_refused_clearly() {
    let dir = tmp("broken");
    committed().save(&dir).unwrap();
    let file = dir.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let e = Model::load(&dir).unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("not a complete safetensors file"), "{e}");
    // A config that does not match the tensors: wrong shape.
    std::fs::write(&file, &bytes).unwrap();
    let cfg = serde_json::to_string(&Config { d_ff: 128, ..Config::default() }).unwrap();
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let e = Model::load(&dir).unwrap_err().to_string();
    assert!(e.contains("has shape [64, 256], expected [64, 128]"), "{e}");
    // A missing tensor.
    let cfg = serde_json::to_string(&Config { n_layer: 3, ..Config::default() }).unwrap();
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let e = Model::load(&dir).unwrap_err().to_string();
    assert!(e.contains("tensor `blocks.2.ln1.weight` is missing"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    let e = Model::load(&dir).unwrap_err().to_string();
    assert!(e.contains("servesim model init"), "{e}");
}
