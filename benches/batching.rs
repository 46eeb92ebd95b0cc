//! Batching on the real server (`cargo bench --bench batching`): throughput at saturation —
//! a closed loop of 32 users with no think time, 20 new tokens per request — for
//! `batching.mode = "none"` (`sync`, threads = cores) against `continuous` with `max_batch`
//! 8 and 16, and each one's ratio to `none`.
//!
//! A batched step makes one matmul of B rows per weight matrix where B requests alone make
//! B matmuls of one row, so the Mini-GPT's per-token overhead is shared by the batch. No
//! emulated work is added: the figures are the model's and the server's own.
//!
//! The server is pinned to the first CPU and the load generator to the others when there
//! are any; `SERVESIM_BENCH_REQUESTS` sets the requests per configuration (default 4000).

mod common;
use common::{one, requests, start};
use servesim::server::{CpuPlan, ServerProcess, affinity};
use std::time::Duration;

const USERS: u32 = 32;
const TOKENS: u32 = 20;
const BODY: &str = r#"{"sentence": "the quick brown fox jumps over the lazy", "max_new_tokens": 20}"#;

/// Closed loop of `USERS` users sending `n` requests; the load report.
fn closed(srv: &ServerProcess, cpus: &CpuPlan, n: u64) -> servesim::load::LoadReport {
    common::closed(srv, cpus, USERS, n, BODY)
}

/// One configuration's figures.
struct Point {
    name: String,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    mean_batch: f64,
    /// CPU per request of the threads running the model (pool or scheduler) (ms).
    model_cpu_ms: f64,
    /// CPU per request of the event loop (ms).
    loop_cpu_ms: f64,
}

fn measure(name: &str, toml: &str, cpus: &CpuPlan, n: u64) -> Point {
    let srv = start(toml, cpus);
    closed(&srv, cpus, n / 10); // warm-up
    let a = one(&srv);
    let r = closed(&srv, cpus, n);
    let b = one(&srv);
    let steps = b.batch.steps - a.batch.steps;
    let mean_batch =
        if steps == 0 { 1.0 } else { (b.batch.sequences - a.batch.sequences) as f64 / steps as f64 };
    let _ = srv.stop(Duration::from_secs(20));
    let done = (b.requests.completed - a.requests.completed).max(1) as f64;
    let model_cpu = (b.pool.cpu_ms - a.pool.cpu_ms) + (b.batch.cpu_ms - a.batch.cpu_ms);
    Point {
        model_cpu_ms: model_cpu / done,
        loop_cpu_ms: (b.loop_cpu_ms - a.loop_cpu_ms) / done,
        name: name.into(),
        rps: r.throughput_rps,
        p50_ms: r.latency_ms.p50,
        p99_ms: r.latency_ms.p99,
        mean_batch,
    }
}

fn main() {
    // `cargo test --benches` runs benches with `--bench`-less arguments: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let allowed = affinity::allowed().expect("CPU affinity");
    let cpus = CpuPlan::split(&allowed, 1);
    let cores = cpus.server.0.len();
    println!(
        "server on CPUs {}, load generator on CPUs {} (shared: {})",
        cpus.server, cpus.load, cpus.shared
    );
    let n = requests();
    println!(
        "closed loop: {USERS} users, no think time, {TOKENS} new tokens, {n} requests per configuration\n"
    );
    let base = format!(
        "[system]\ncores = {cores}\n[worker]\nhandler = \"sync\"\nthreads = {cores}\nqueue_limit = 256\n"
    );
    let mut points = vec![measure("none (sync)", &base, &cpus, n)];
    for max_batch in [8, 16] {
        let toml = format!("{base}[batching]\nmode = \"continuous\"\nmax_batch = {max_batch}\n");
        points.push(measure(&format!("continuous, max_batch {max_batch}"), &toml, &cpus, n));
    }
    let none = points[0].rps;
    println!(
        "{:<26} {:>8} {:>9} {:>7} {:>7} {:>6} {:>9} {:>8} {:>7}",
        "batching", "req/s", "tokens/s", "p50 ms", "p99 ms", "batch", "model CPU", "loop CPU", "× none"
    );
    for p in &points {
        println!(
            "{:<26} {:>8.1} {:>9.0} {:>7.2} {:>7.2} {:>6.2} {:>6.0} µs {:>5.0} µs {:>7.2}",
            p.name,
            p.rps,
            p.rps * f64::from(TOKENS),
            p.p50_ms,
            p.p99_ms,
            p.mean_batch,
            p.model_cpu_ms * 1e3,
            p.loop_cpu_ms * 1e3,
            p.rps / none
        );
    }
    println!(
        "
(batch: mean sequences per step; CPU: per request, the model's threads and the event loop)"
    );
}
