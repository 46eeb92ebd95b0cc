//! Mini-GPT speed: per-token decode latency with the KV cache at B = 1, tokens/s of the
//! batched step at B = 1, 8, 32, and one full request (a 40-character prompt, 20 new
//! tokens). One core (ndarray's matmul backend is single-threaded).
//!
//! Run: `cargo bench --bench gpt`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use servesim::gpt::{Model, NoHooks};
use std::hint::black_box;
use std::path::Path;

const PROMPT: &str = "the quick brown fox jumps over a lazy dog"; // 41 characters

fn model() -> Model {
    Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mini-gpt")).expect("committed weights")
}

fn decode(c: &mut Criterion) {
    let m = model();
    let fresh = m.start(PROMPT, 64, false, &mut NoHooks).unwrap();
    // A sequence one token in, so every measured step runs a full forward pass.
    let mut warm = fresh.clone();
    m.step(&mut warm, &mut NoHooks);

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("token, B=1, KV cache", |b| {
        b.iter_batched_ref(|| warm.clone(), |s| m.step(s, &mut NoHooks), BatchSize::SmallInput)
    });
    for batch in [1usize, 8, 32] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("step_batch B={batch}"), |b| {
            b.iter_batched_ref(
                || vec![warm.clone(); batch],
                |seqs| {
                    let mut refs: Vec<_> = seqs.iter_mut().collect();
                    m.step_batch(&mut refs, &mut NoHooks)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Elements(1));
    g.bench_function("41-char prompt, 20 new tokens", |b| {
        b.iter(|| {
            let mut s = m.start(black_box(PROMPT), 20, false, &mut NoHooks).unwrap();
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
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(4));
    targets = decode
}
criterion_main!(benches);
