//! Mini-GPT speed on one core. ndarray only holds the weights and the KV cache; every
//! kernel — the matmuls, attention's q·Kᵀ and p·V, LayerNorm, softmax, GELU — is the
//! crate's own, hand-blocked for AVX2 + FMA (`src/gpt/simd.rs`, chosen at run time; plain
//! code otherwise) and single-threaded, as NumPy without a threaded BLAS:
//!
//! * `decode/token B=1` — latency of one decode step with the KV cache (a forward pass of
//!   one row), over the 20 tokens after a 41-character prompt;
//! * `decode/token B=1, outside kernels` — the part of that step outside the matmul
//!   kernels (embedding, LayerNorm, softmax, GELU, bookkeeping): the work a NumPy model
//!   does holding the GIL (it also counts the timing hooks' two clock reads per kernel);
//! * `decode/step_batch B=…` — one batched step of B sequences (prompts of 21 to 56
//!   characters, each at its own position), reported as tokens/s;
//! * `request` — one whole request: the prefill of a 41-character prompt and 20 new tokens.
//!
//! Only the steps are timed: starting the sequences (their prefill) is outside the clock.
//!
//! Run: `cargo bench --bench gpt`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use servesim::gpt::{Model, NoHooks, Sequence, TimingHooks, Workspace};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const PROMPT: &str = "the quick brown fox jumps over a lazy dog"; // 41 characters
/// Prompts of a batch, cycled: 41, 21, 56 and 33 characters.
const PROMPTS: [&str; 4] = [
    PROMPT,
    "she dont like apples.",
    "their going to the park tomorow, if the wether is good!!",
    "i has two cat and one dogs at home",
];
/// Tokens generated per request.
const NEW: usize = 20;

fn model() -> Model {
    Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mini-gpt")).expect("committed weights")
}

/// `batch` fresh sequences, prefilled, each with `NEW` steps that run a forward pass ahead.
fn fresh(m: &Model, batch: usize) -> Vec<Sequence> {
    // NEW + 1 tokens: the last token of a sequence needs no forward pass, so every timed
    // step below runs one.
    (0..batch).map(|i| m.start(PROMPTS[i % PROMPTS.len()], NEW + 1, false, &mut NoHooks).unwrap()).collect()
}

/// Times `iters` steps of `batch` sequences — [`Model::step`] when `single`, else
/// [`Model::step_batch_in`] — restarting them (untimed) every `NEW`.
fn time_steps(m: &Model, batch: usize, single: bool, iters: u64) -> Duration {
    let mut ws = Workspace::default();
    let (mut total, mut seqs, mut done) = (Duration::ZERO, fresh(m, batch), 0);
    for _ in 0..iters {
        if done == NEW {
            (seqs, done) = (fresh(m, batch), 0);
        }
        let mut refs: Vec<&mut Sequence> = seqs.iter_mut().collect();
        let t = Instant::now();
        if single {
            m.step(refs[0], &mut NoHooks);
        } else {
            m.step_batch_in(&mut ws, &mut refs, &mut NoHooks);
        }
        total += t.elapsed();
        done += 1;
    }
    total
}

/// Times the part of `iters` single steps outside the matmul kernels (the step's wall time
/// minus its kernels'), restarting the sequence (untimed) every `NEW`.
fn time_outside_kernels(m: &Model, iters: u64) -> Duration {
    let (mut total, mut seq, mut done) = (Duration::ZERO, fresh(m, 1).remove(0), 0);
    for _ in 0..iters {
        if done == NEW {
            (seq, done) = (fresh(m, 1).remove(0), 0);
        }
        let mut hooks = TimingHooks::new(NoHooks);
        let t = Instant::now();
        m.step(&mut seq, &mut hooks);
        total += t.elapsed().saturating_sub(hooks.matmul);
        done += 1;
    }
    total
}

fn decode(c: &mut Criterion) {
    let m = model();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("token B=1", |b| b.iter_custom(|iters| time_steps(&m, 1, true, iters)));
    g.bench_function("token B=1, outside kernels", |b| {
        b.iter_custom(|iters| time_outside_kernels(&m, iters))
    });
    for batch in [1usize, 8, 32] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("step_batch B={batch}"), |b| {
            b.iter_custom(|iters| time_steps(&m, batch, false, iters))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Elements(NEW as u64));
    g.bench_function("41-char prompt, 20 new tokens", |b| {
        b.iter(|| {
            let mut s = m.start(black_box(PROMPT), NEW, false, &mut NoHooks).unwrap();
            while !s.is_finished() {
                m.step(&mut s, &mut NoHooks);
            }
            s
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = decode
}
criterion_main!(benches);
