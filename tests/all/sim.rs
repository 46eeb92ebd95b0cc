//! The simulator: exact mechanisms on small cases, determinism, conservation of requests.

use proptest::prelude::*;
use servesim::scenario::{Override, Scenario};
use servesim::sim::{self, Replication};
use std::path::Path;

fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, Path::new("test.toml"), Path::new("."), &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn one(text: &str) -> Replication {
    sim::run_replication(&scenario(text), 0).unwrap()
}

/// Latencies of deterministic cases are exact up to the histogram's 3 significant digits.
const HIST_TOL: f64 = 1e-3;

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(1e-12)
}

#[test]
fn async_blocking_serves_one_request_at_a_time() {
    // A burst of 50 requests of 80 ms each on the loop thread: they finish at 80, 160, …,
    // 4000 ms whatever the threadpool size — the lesson's pitfall.
    let r = one("[worker]\nhandler = \"async-blocking\"\nthreads = 40\n[system]\ncores = 4\n\
         [clients]\nkind = \"burst\"\nburst = 50\n[workload]\nnew_tokens = 0\n\
         [cost]\nrequest_free_ms = 80\n");
    let f = r.figures;
    assert_eq!(r.completed, 50);
    assert!(close(f.latency_ms.mean, 2040.0, HIST_TOL), "{:?}", f.latency_ms);
    assert!(close(f.latency_ms.max, 4000.0, HIST_TOL), "{:?}", f.latency_ms);
    assert!(close(f.throughput_rps, 12.5, 1e-9), "{}", f.throughput_rps);
    assert_eq!(f.utilization.threads, 0.0);
}

#[test]
fn sync_handler_uses_threads_in_parallel() {
    // The same burst with the sync handler and 4 cores: 4 at a time (threads ≥ 4).
    let r = one("[worker]\nthreads = 40\n[system]\ncores = 4\n[clients]\nkind = \"burst\"\nburst = 40\n\
         [workload]\nnew_tokens = 0\n[cost]\nrequest_free_ms = 80\n");
    // 40 threads share 4 cores: all finish together at 40 · 80 / 4 = 800 ms.
    assert!(close(r.figures.latency_ms.max, 800.0, HIST_TOL), "{:?}", r.figures.latency_ms);
    assert!(close(r.figures.latency_ms.p50, 800.0, HIST_TOL), "{:?}", r.figures.latency_ms);
    assert!(close(r.figures.utilization.cores, 1.0, 1e-9));
}

const TWO_LONG_LOCKED: &str = "[system]\ncores = 2\n[worker]\nthreads = 2\nswitch_interval_ms = 5\n\
    [clients]\nkind = \"burst\"\nburst = 2\n[workload]\nnew_tokens = 0\n\
    [cost]\nrequest_locked_ms = 50\n";

#[test]
fn mutex_is_fifo_and_never_preempts() {
    let mut sc = scenario(TWO_LONG_LOCKED);
    sc.worker.lock = servesim::scenario::LockKind::Mutex;
    let r = sim::run_replication(&sc, 0).unwrap();
    // One after the other: 50 and 100 ms.
    assert!(close(r.figures.latency_ms.mean, 75.0, HIST_TOL), "{:?}", r.figures.latency_ms);
    assert!(close(r.figures.utilization.lock, 1.0, 1e-9));
}

#[test]
fn gil_holder_drops_the_lock_after_the_switch_interval() {
    let mut sc = scenario(TWO_LONG_LOCKED);
    sc.worker.lock = servesim::scenario::LockKind::Gil;
    let r = sim::run_replication(&sc, 0).unwrap();
    // They alternate every 5 ms: A runs 0–5, 10–15, … 90–95; B 5–10, … 95–100.
    assert!(close(r.figures.latency_ms.mean, 97.5, HIST_TOL), "{:?}", r.figures.latency_ms);
    assert!(close(r.figures.latency_ms.max, 100.0, HIST_TOL), "{:?}", r.figures.latency_ms);
}

#[test]
fn lock_hand_offs_cost_the_receiver_cpu() {
    // 4 users, always contended, 1 ms locked per request: 1000 req/s without hand-off cost,
    // 1 / 1.1 ms = 909 req/s when each hand-off costs 100 µs.
    let text = |handoff: f64| {
        format!(
            "[system]\ncores = 4\n[worker]\nthreads = 4\nlock = \"mutex\"\n[clients]\nusers = 4\n\
             [workload]\nnew_tokens = 0\n[cost]\nrequest_locked_ms = 1\nhandoff_us = {handoff}\n\
             [run]\nrequests = 5000\nwarmup_requests = 100\n"
        )
    };
    let free = one(&text(0.0)).figures.throughput_rps;
    let paid = one(&text(100.0)).figures.throughput_rps;
    assert!(close(free, 1000.0, 1e-3), "{free}");
    assert!(close(paid, 1000.0 / 1.1, 1e-3), "{paid}");
}

#[test]
fn lock_holder_slows_down_when_cores_are_shared() {
    // Two requests of 10 ms locked then 10 ms free. On 2 cores: A 0–10 locked, 10–20 free;
    // B 10–20 locked, 20–30 free → mean 25 ms. On 1 core, B's locked work shares the core
    // with A's free work from 10 ms, so both take 20 ms: A done at 30, B at 40 → mean 35.
    let text = |cores: u32| {
        format!(
            "[system]\ncores = {cores}\n[worker]\nthreads = 2\nlock = \"mutex\"\n\
             [clients]\nkind = \"burst\"\nburst = 2\n[workload]\nnew_tokens = 0\n\
             [cost]\nrequest_locked_ms = 10\nrequest_free_ms = 10\n"
        )
    };
    let two = one(&text(2)).figures.latency_ms;
    let single = one(&text(1)).figures.latency_ms;
    assert!(close(two.mean, 25.0, HIST_TOL), "{two:?}");
    assert!(close(single.mean, 35.0, HIST_TOL), "{single:?}");
}

#[test]
fn same_seed_same_output_and_other_seeds_differ() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/seed-sync.toml");
    let sets: Vec<Override> =
        ["run.requests=2000", "run.replications=3"].iter().map(|s| s.parse().unwrap()).collect();
    let sc = Scenario::load(&path, &sets).unwrap();
    let a = sim::simulate(&sc).unwrap();
    let b = sim::simulate(&sc).unwrap();
    assert_eq!(a, b);
    let mut other = sc.clone();
    other.run.seed = 2;
    assert_ne!(sim::simulate(&other).unwrap().figures, a.figures);
}

/// A distribution in scenario syntax, from a kind index and a mean [ms].
fn dist(kind: u8, mean: f64) -> String {
    match kind % 5 {
        0 => format!("{mean}"),
        1 => format!("{{ dist = \"exponential\", mean = {} }}", mean.max(1e-3)),
        2 => format!("{{ dist = \"lognormal\", mean = {}, cv = 0.7 }}", mean.max(1e-3)),
        3 => format!("{{ dist = \"gamma\", mean = {}, cv = 1.5 }}", mean.max(1e-3)),
        _ => format!("{{ dist = \"uniform\", min = 0, max = {} }}", 2.0 * mean),
    }
}

prop_compose! {
    fn random_scenario()(
        cores in 1u32..6, workers in 1u32..4, threads in 1u32..8,
        handler in 0usize..3, lock in 0usize..3, balancer in 0usize..4, kind in 0usize..3,
        users in 1u32..20, think in 0.0f64..5.0, rate in 1.0f64..2000.0, burst in 1u32..60,
        switch_ms in 0.05f64..6.0, handoff_us in 0.0f64..30.0, slices in 1u32..4,
        tokens in 0u32..5, loop_lock in any::<bool>(),
        costs in prop::collection::vec((any::<u8>(), 0.0f64..2.0), 6),
        queue_limit in 20u32..60, requests in 20u64..300, warmup in 0u64..30,
        batching in 0usize..3, max_batch in 1u32..6, max_wait in 0.0f64..3.0,
        step in (any::<u8>(), 0.0f64..1.0), seq in (any::<u8>(), 0.0f64..0.5),
    ) -> String {
        let batching = ["none", "static", "continuous"][batching];
        let handler = ["sync", "async-blocking", "async-offload"][handler];
        let lock = ["none", "mutex", "gil"][lock];
        let balancer = ["round-robin", "random", "least-outstanding", "hash"][balancer];
        let kind = ["closed", "open", "burst"][kind];
        let c: Vec<String> = costs.iter().map(|&(k, m)| dist(k, m)).collect();
        format!(
            "[system]\ncores = {cores}\nworkers = {workers}\nbalancer = \"{balancer}\"\n\
             [worker]\nhandler = \"{handler}\"\nthreads = {threads}\nlock = \"{lock}\"\n\
             switch_interval_ms = {switch_ms}\nqueue_limit = {queue_limit}\n\
             [clients]\nkind = \"{kind}\"\nusers = {users}\nthink_ms = {think}\nrate_rps = {rate}\nburst = {burst}\n\
             [workload]\nnew_tokens = {tokens}\n\
             [cost]\nloop_in_ms = {}\nloop_out_ms = {}\nloop_lock = {loop_lock}\n\
             request_locked_ms = {}\nrequest_free_ms = {}\ntoken_locked_ms = {}\ntoken_free_ms = {}\n\
             release_points = {slices}\nhandoff_us = {handoff_us}\n\
             [batching]\nmode = \"{batching}\"\nmax_batch = {max_batch}\nmax_wait_ms = {max_wait}\n\
             step_locked_ms = {}\nseq_free_ms = {}\n\
             [run]\nrequests = {requests}\nwarmup_requests = {warmup}\nreplications = 1\nmax_sim_s = 60\n",
            c[0], c[1], c[2], c[3], c[4], c[5], dist(step.0, step.1), dist(seq.0, seq.1),
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any valid scenario runs without panicking, conserves requests (every arrival is
    /// refused, completed or still inside), obeys basic bounds, and reproduces exactly.
    #[test]
    fn random_scenarios_conserve_requests_and_reproduce(text in random_scenario()) {
        let sc = Scenario::parse(&text, Path::new("random.toml"), Path::new("."), &[]);
        let sc = match sc {
            Ok(sc) => sc,
            // users > queue_limit is refused by design; nothing else may be.
            Err(e) => { prop_assert!(e.to_string().contains("queue_limit"), "{e}"); return Ok(()); }
        };
        let Ok(a) = sim::run_replication(&sc, 0) else {
            // Only the documented refusal: zero work with zero think time.
            prop_assert!(sim::check_supported(&sc).is_err());
            return Ok(());
        };
        prop_assert_eq!(a.arrived, a.rejected + a.finished + a.in_system, "{:?}", a);
        let u = a.figures.utilization;
        for x in [u.cores, u.lock, u.threads, u.event_loop] {
            prop_assert!((0.0..=1.0 + 1e-9).contains(&x), "utilization {x} in {u:?}");
        }
        let l = a.figures.latency_ms;
        prop_assert!(l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.max * (1.0 + 1e-3), "{l:?}");
        let b = sim::run_replication(&sc, 0).unwrap();
        prop_assert_eq!(a, b);
    }
}

/// Two requests of 4 tokens, at t = 0 and t = 2 ms; a step of B sequences costs
/// 1 + 0.5·B ms (lock-free), no other work.
fn batching_case(mode: &str) -> Replication {
    let dir = std::env::temp_dir().join(format!("servesim-batch-{mode}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("arrivals.csv"), "0\n2\n").unwrap();
    let text = format!(
        "[clients]\nkind = \"trace\"\ntrace = \"arrivals.csv\"\n[workload]\nnew_tokens = 4\n\
         [batching]\nmode = \"{mode}\"\nmax_batch = 2\nmax_wait_ms = 5\nstep_free_ms = 1\nseq_free_ms = 0.5\n"
    );
    let sc = Scenario::parse(&text, Path::new("batch.toml"), &dir, &[]).unwrap();
    let r = sim::run_replication(&sc, 0).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    r
}

#[test]
fn continuous_batching_joins_and_leaves_at_step_boundaries() {
    // A alone: steps of 1.5 ms end at 1.5 and 3.0; B (arrived at 2) joins at 3.0; steps of
    // 2 ms end at 5.0 and 7.0, when A has its 4 tokens and leaves; B alone finishes at 10.0.
    // Latencies 7.0 and 8.0 ms.
    let r = batching_case("continuous");
    assert_eq!(r.completed, 2);
    assert!(close(r.figures.latency_ms.mean, 7.5, HIST_TOL), "{:?}", r.figures.latency_ms);
    assert!(close(r.figures.latency_ms.max, 8.0, HIST_TOL), "{:?}", r.figures.latency_ms);
    // Steps: 2 with one sequence, 2 with two, 2 with one → mean batch 8/6.
    assert!(close(r.figures.mean_batch, 8.0 / 6.0, 1e-12), "{}", r.figures.mean_batch);
}

#[test]
fn static_batching_waits_for_a_full_batch_and_runs_it_to_the_end() {
    // A waits; B fills the batch at 2 ms; 4 steps of 2 ms: both replies at 10 ms.
    let r = batching_case("static");
    assert!(close(r.figures.latency_ms.mean, 9.0, HIST_TOL), "{:?}", r.figures.latency_ms);
    assert!(close(r.figures.mean_batch, 2.0, 1e-12));
}

#[test]
fn static_batching_loses_to_continuous_when_output_lengths_vary() {
    let text = |mode: &str| {
        format!(
            "[clients]\nkind = \"open\"\nrate_rps = 150\n[workload]\nnew_tokens = {{ dist = \"uniform\", min = 1, max = 60 }}\n\
             [batching]\nmode = \"{mode}\"\nmax_batch = 8\nmax_wait_ms = 5\nstep_free_ms = 1\nseq_free_ms = 0.1\n\
             [run]\nrequests = 4000\nwarmup_requests = 400\n"
        )
    };
    let st = sim::simulate(&scenario(&text("static"))).unwrap();
    let co = sim::simulate(&scenario(&text("continuous"))).unwrap();
    let (s, c) = (st.figures.latency_ms.mean, co.figures.latency_ms.mean);
    assert!(c + co.ci95.latency_ms.mean < s - st.ci95.latency_ms.mean, "continuous {c} vs static {s}");
}
