//! Simulator speed: customers per second on the M/M/4 model (`models/mmc.toml`, one
//! replication of 1,000,000 customers) and requests per second on the GIL scenario
//! (`models/seed-sync.toml`, one replication of 10,000 requests), and with the lesson model's
//! 13,200 release points per request under CPython's GIL; and the cost of the draw a
//! seed-sync request makes 40 of, a per-token gamma (mean 1.642 ms, cv 0.25): the floor
//! under any exact simulation of that model that draws every token.
//!
//! Run: `cargo bench --bench sim`. Criterion reports the throughput in elements/s
//! (customers or requests per second of wall time, one core).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use servesim::des::StreamRng;
use servesim::scenario::{Override, Scenario};
use servesim::sim;
use servesim::workload::Dist;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

fn load(file: &str, sets: &[&str]) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(file);
    let sets: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
    Scenario::load(&path, &sets).unwrap()
}

fn bench(c: &mut Criterion, name: &str, sc: &Scenario, items: u64) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(items));
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("one replication", |b| {
        b.iter(|| {
            let r = sim::run_replication(black_box(sc), 0).unwrap();
            assert_eq!(r.finished, items);
            r
        })
    });
    g.finish();
}

fn simulator(c: &mut Criterion) {
    let customers = 1_000_000;
    let mmc = load("mmc.toml", &["run.requests=1000000", "run.warmup_requests=0"]);
    bench(c, "mmc: customers", &mmc, customers);
    let requests = 10_000;
    let gil = load("seed-sync.toml", &["run.requests=10000", "run.warmup_requests=0"]);
    bench(c, "seed-sync: requests", &gil, requests);
    // The lesson's model as CPython runs it: 528 forward steps × 25 kernels = 13,200 release
    // points per request (660 per token), 40 threads, 50 users, CPython's GIL.
    let lesson = 300;
    let fine =
        load("seed-sync.toml", &["run.requests=300", "run.warmup_requests=0", "cost.release_points=660"]);
    bench(c, "seed-sync, 13,200 release points per request: requests", &fine, lesson);
}

fn draws(c: &mut Criterion) {
    let n = 1000;
    let gamma = Dist::Gamma { mean: 1.642, cv: 0.25 }.sampler();
    let mut rng = StreamRng::seed_from_u64(1);
    let mut g = c.benchmark_group("gamma draws");
    g.throughput(Throughput::Elements(n));
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.bench_function("per-token cost", |b| b.iter(|| (0..n).map(|_| gamma.sample(&mut rng)).sum::<f64>()));
    g.finish();
}

criterion_group!(benches, simulator, draws);
criterion_main!(benches);
