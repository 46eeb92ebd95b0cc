//! Benchmarks of the real server, printed as figures (`cargo bench --bench server`):
//!
//! 1. overhead per request — HTTP, JSON, admission, dispatch to the pool and back — with
//!    `max_new_tokens = 0`, so the model does nothing;
//! 2. `sync` throughput against the compute bound `cores / D`, where D is the server's
//!    service demand measured alone (one client): its process CPU time per request, the
//!    handler's and the event loop's; the goal is ≥ 95% of the bound. Twice: the
//!    Mini-GPT generating 20 tokens (S under a millisecond, where the fixed cost of a
//!    request — loopback TCP in the kernel, two thread wake-ups — weighs most) and 100.
//!
//! The server is pinned to the first CPU and the load generator to the others when there
//! are any; `SERVESIM_BENCH_REQUESTS` scales the run (default 4000).

mod common;
use common::{closed, one, requests, start};
use servesim::server::{CpuPlan, WorkerStats, affinity};

/// Mean handler wall time per completed request between two snapshots (ms).
fn service_ms(before: &WorkerStats, after: &WorkerStats) -> f64 {
    let n = (after.requests.completed - before.requests.completed).max(1) as f64;
    (after.sums.compute_ms - before.sums.compute_ms) / n
}

/// The server process's CPU time per completed request between two snapshots (ms): the
/// handler and the event loop's parsing, dispatch and serialization — every cycle a
/// request costs the cores.
fn cpu_ms(before: &WorkerStats, after: &WorkerStats) -> f64 {
    let n = (after.requests.completed - before.requests.completed).max(1) as f64;
    (after.process_cpu_ms - before.process_cpu_ms) / n
}

fn overhead(cpus: &CpuPlan, n: u64) {
    let srv = start("[worker]\nthreads = 4\n", cpus);
    let body = r#"{"sentence": "the quick brown fox", "max_new_tokens": 0}"#;
    closed(&srv, cpus, 1, n / 10, body); // warm-up
    let before = one(&srv);
    let r = closed(&srv, cpus, 1, n, body);
    let after = one(&srv);
    let done = (after.requests.completed - before.requests.completed) as f64;
    let server_ms = (after.sums.total_ms - before.sums.total_ms) / done;
    let loop_cpu_us = (after.loop_cpu_ms - before.loop_cpu_ms) / done * 1e3;
    println!("overhead per request, max_new_tokens = 0 ({n} requests, 1 client, keep-alive):");
    println!(
        "  round trip (client)      {:>9.1} µs mean, {:.1} µs p50",
        r.latency_ms.mean * 1e3,
        r.latency_ms.p50 * 1e3
    );
    println!("  inside the server        {:>9.1} µs mean (admission to response)", server_ms * 1e3);
    println!("  event-loop CPU           {:>9.1} µs per request", loop_cpu_us);
    println!("  throughput               {:>9.0} req/s", r.throughput_rps);
    let _ = srv.stop(std::time::Duration::from_secs(20));
}

fn throughput(cpus: &CpuPlan, n: u64, sentence: &str, tokens: u32) {
    let cores = cpus.server.0.len();
    let toml = format!("[system]\ncores = {cores}\n[worker]\nhandler = \"sync\"\nthreads = {cores}\n");
    let srv = start(&toml, cpus);
    let body = format!(r#"{{"sentence": "{sentence}", "max_new_tokens": {tokens}}}"#);
    closed(&srv, cpus, 1, n / 20, &body); // warm-up
    let a = one(&srv);
    closed(&srv, cpus, 1, n / 4, &body);
    let b = one(&srv);
    let (s_ms, d_ms) = (service_ms(&a, &b), cpu_ms(&a, &b));
    let bound = cores as f64 / (d_ms / 1e3);
    let users = 4 * cores as u32;
    let r = closed(&srv, cpus, users, n, &body);
    println!(
        "sync throughput against the compute bound ({cores} core(s), {cores} thread(s), {tokens} tokens):"
    );
    println!("  handler time (alone)     {s_ms:>9.3} ms (wall, lock-free)");
    println!("  service demand D (alone) {d_ms:>9.3} ms (server CPU per request: handler + event loop)");
    println!("  bound cores / D          {bound:>9.1} req/s");
    println!("  measured, {users} clients      {:>9.1} req/s", r.throughput_rps);
    println!("  ratio                    {:>9.1} %  (goal ≥ 95%)", 100.0 * r.throughput_rps / bound);
    let _ = srv.stop(std::time::Duration::from_secs(20));
}

fn main() {
    // `cargo test --benches` runs benches with `--bench`-less arguments: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let allowed = affinity::allowed().expect("CPU affinity");
    let cpus = CpuPlan::split(&allowed, 1);
    println!(
        "server on CPUs {}, load generator on CPUs {} (shared: {})\n",
        cpus.server, cpus.load, cpus.shared
    );
    let n = requests();
    overhead(&cpus, n);
    for (sentence, tokens, share) in
        [("the quick brown fox jumps over the lazy", 20, 1), ("the quick brown fox", 100, 4)]
    {
        println!();
        throughput(&cpus, n / share, sentence, tokens);
    }
}
