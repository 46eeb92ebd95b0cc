//! The simulator: exact mechanisms on small cases, determinism, conservation of requests.

use proptest::prelude::*;
use servesim::scenario::{Override, Scenario};
use servesim::sim::{self, Replication, Truncation};
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
fn fair_gil_holder_drops_the_lock_after_the_switch_interval() {
    let mut sc = scenario(TWO_LONG_LOCKED);
    sc.worker.lock = servesim::scenario::LockKind::FairGil;
    let r = sim::run_replication(&sc, 0).unwrap();
    // They alternate every 5 ms: A runs 0–5, 10–15, … 90–95; B 5–10, … 95–100.
    assert!(close(r.figures.latency_ms.mean, 97.5, HIST_TOL), "{:?}", r.figures.latency_ms);
    assert!(close(r.figures.latency_ms.max, 100.0, HIST_TOL), "{:?}", r.figures.latency_ms);
}

#[test]
fn cpython_gil_switches_after_a_timed_wait_runs_out_and_pays_two_wake_ups_a_turn() {
    // Two 50 ms requests of bytecode with no release point, wake-ups of 100 µs. A turn: the
    // waiter's 5 ms wait runs out, it is woken (100 µs) and asks; the holder drops and
    // signals it, and it is woken again (100 µs) to take the GIL: the GIL idles 100 µs a
    // turn, and the waiter's next wait starts 100 µs into the turn (the switched-out
    // holder's wake-up). So each turn but the first holds 5.2 ms of work in 5.3 ms.
    let mut sc = scenario(TWO_LONG_LOCKED);
    sc.worker.lock = servesim::scenario::LockKind::Gil;
    sc.cost.wake_us = servesim::workload::Dist::Const(100.0);
    sc.cost.vain_wake_us = 0.0;
    let r = sim::run_replication(&sc, 0).unwrap();
    let l = r.figures.latency_ms;
    // 100 ms of work, and about 19 turns of 0.1 ms idle: the last reply near 101.9 ms.
    assert!(l.max > 101.0 && l.max < 102.5, "{l:?}");
    // They alternate: both finish within a turn of each other.
    assert!(l.max - l.p50 < 5.5, "{l:?}");
}

#[test]
fn the_wait_for_a_thread_leaves_out_the_loop_work_before_it() {
    // One user: 2 ms of loop work, then 5 ms on an idle pool thread. No wait at all (the
    // loop work was once counted as a wait for a thread).
    let r = one("[worker]\nthreads = 2\nlock = \"none\"\n[clients]\nusers = 1\n[workload]\nnew_tokens = 0\n\
         [cost]\nloop_in_free_ms = 2\nrequest_free_ms = 5\n[run]\nrequests = 50\nwarmup_requests = 5\n");
    assert_eq!(r.figures.waits_ms.thread, 0.0, "{:?}", r.figures.waits_ms);
    assert!(close(r.figures.latency_ms.mean, 7.0, HIST_TOL), "{:?}", r.figures.latency_ms);
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
fn a_hand_off_costs_its_switch_cpu_whether_or_not_a_core_is_idle() {
    // The 4-user run above, every hand-off onto an idle core: the wake-up (`handoff_us`)
    // and the switch's CPU (`switch_us`) are both paid, 50 + 50 µs.
    let text = |handoff: f64, switch: f64| {
        format!(
            "[system]\ncores = 4\n[worker]\nthreads = 4\nlock = \"mutex\"\n[clients]\nusers = 4\n\
             [workload]\nnew_tokens = 0\n[cost]\nrequest_locked_ms = 1\nhandoff_us = {handoff}\n\
             switch_us = {switch}\n[run]\nrequests = 5000\nwarmup_requests = 100\n"
        )
    };
    let both = one(&text(50.0, 50.0)).figures.throughput_rps;
    assert!(close(both, 1000.0 / 1.1, 1e-3), "{both}");
    // Two requests of 10 ms locked, then 10 ms free, on one core: A holds 0–10 and goes on
    // to its free work, so no core is idle when B gets the lock. B's wake-up costs no
    // time; the switch costs the core its CPU: A's free work and B's switch and locked work
    // share the core, A is done at 30 ms and B at 40 ms + the switch.
    let burst = |handoff: f64, switch: f64| {
        one(&format!(
            "[system]\ncores = 1\n[worker]\nthreads = 2\nlock = \"mutex\"\n\
             [clients]\nkind = \"burst\"\nburst = 2\n[workload]\nnew_tokens = 0\n\
             [cost]\nrequest_locked_ms = 10\nrequest_free_ms = 10\nhandoff_us = {handoff}\n\
             switch_us = {switch}\n"
        ))
        .figures
        .latency_ms
        .max
    };
    let woken = burst(1000.0, 0.0);
    assert!(close(woken, 40.0, HIST_TOL), "no idle core, no wake-up cost: {woken}");
    let switched = burst(1000.0, 500.0);
    assert!(close(switched, 40.5, HIST_TOL), "the switch's 0.5 ms of CPU: {switched}");
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
fn a_time_slice_runs_the_lock_holder_at_full_speed() {
    // The same two requests on 1 core with time slices longer than the work: the kernel
    // runs one thread at a time. A: 0–10 locked, 10–20 free (it keeps the core); B, woken
    // at 10 by the lock, runs when A is done: 20–30 locked, 30–40 free → mean 30 ms (35 with
    // processor sharing, where B's locked work shares the core with A's free work).
    let r = one("[system]\ncores = 1\nscheduler = \"slice\"\nslice_ms = 100\n[worker]\nthreads = 2\n\
         lock = \"mutex\"\n[clients]\nkind = \"burst\"\nburst = 2\n[workload]\nnew_tokens = 0\n\
         [cost]\nrequest_locked_ms = 10\nrequest_free_ms = 10\n");
    assert!(close(r.figures.latency_ms.mean, 30.0, HIST_TOL), "{:?}", r.figures.latency_ms);
    // Slices of 4 ms: A's slices end at 4, 8 (nobody waits: it goes on), 12 (B waits: B
    // runs 12–16, A 16–20, B 20–24, A 24–28 done, B 28–30 locked done, 30–40 free).
    let r = one("[system]\ncores = 1\nscheduler = \"slice\"\nslice_ms = 4\n[worker]\nthreads = 2\n\
         lock = \"mutex\"\n[clients]\nkind = \"burst\"\nburst = 2\n[workload]\nnew_tokens = 0\n\
         [cost]\nrequest_locked_ms = 10\nrequest_free_ms = 10\n");
    assert!(close(r.figures.latency_ms.mean, 34.0, HIST_TOL), "{:?}", r.figures.latency_ms);
    assert!(close(r.figures.latency_ms.max, 40.0, HIST_TOL), "{:?}", r.figures.latency_ms);
}

/// A stage's p95 is the middle of its histogram bucket: within 0.4% of the value.
const STAGE_TOL: f64 = 4e-3;

#[test]
fn the_second_of_two_requests_waits_for_the_lock_as_long_as_the_first_holds_it() {
    // Both at t = 0 on two threads and two cores; each holds the mutex 50 ms, then works
    // 10 ms without it. The first: no wait, held 50, free 10. The second: waits the first's
    // 50 ms held, then the same. The second's wait adds a hand-off of 0.1 ms (a core was
    // idle), which the server also counts as waiting: its hold begins once it is woken.
    for (handoff_us, wait_ms) in [(0.0, 50.0), (100.0, 50.1)] {
        let r = one(&format!(
            "[system]\ncores = 2\n[worker]\nthreads = 2\nlock = \"mutex\"\n[clients]\nkind = \"burst\"\n\
             burst = 2\n[workload]\nnew_tokens = 0\n[cost]\nrequest_locked_ms = 50\nrequest_free_ms = 10\n\
             handoff_us = {handoff_us}\n"
        ));
        let s = r.figures.stages_ms;
        assert_eq!(r.completed, 2);
        assert!(close(s.lock.mean, wait_ms / 2.0, 1e-9), "{s:?}");
        assert!(close(s.lock.p95, wait_ms, STAGE_TOL), "{s:?}");
        assert!(close(s.held.mean, 50.0, 1e-9) && close(s.held.p95, 50.0, STAGE_TOL), "{s:?}");
        assert!(close(s.free.mean, 10.0, 1e-9), "{s:?}");
        assert_eq!((s.queue.mean, s.event_loop.mean), (0.0, 0.0), "{s:?}");
        // Every moment of the two requests is in a stage: 60 ms and wait + 60 ms.
        let total = s.queue.mean + s.lock.mean + s.held.mean + s.free.mean;
        assert!(close(total, r.figures.latency_ms.mean, 1e-9), "{s:?} vs {:?}", r.figures.latency_ms);
    }
}

#[test]
fn async_blocking_stages_count_the_wait_the_server_sees() {
    // Three requests at t = 0 on the loop: 1 ms of loop work, 10 ms of handler, 2 ms of
    // loop work each. The loop reads the second and the third at 13 ms, when the first is
    // done: the second runs at once (no queue as the server sees it), the third waits 13 ms
    // more. Loop work 3 ms, free 13 ms each.
    let r = one("[worker]\nhandler = \"async-blocking\"\nlock = \"none\"\n[clients]\nkind = \"burst\"\n\
         burst = 3\n[workload]\nnew_tokens = 0\n[cost]\nloop_in_free_ms = 1\nrequest_free_ms = 10\n\
         loop_out_free_ms = 2\n");
    let s = r.figures.stages_ms;
    assert!(close(s.queue.mean, 13.0 / 3.0, 1e-9) && close(s.queue.p95, 13.0, STAGE_TOL), "{s:?}");
    assert!(close(s.event_loop.mean, 3.0, 1e-9), "{s:?}");
    assert!(close(s.free.mean, 13.0, 1e-9), "{s:?}");
    assert_eq!((s.lock.mean, s.held.mean), (0.0, 0.0), "{s:?}");
    // The simulator's wait for the loop holds all of it: 0, 13 and 26 ms.
    assert!(close(r.figures.waits_ms.event_loop, 13.0, 1e-9), "{:?}", r.figures.waits_ms);
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

/// Latencies never exceed the simulated time and utilizations stay in [0, 1]: a time that
/// wrapped past the u64 clock's end would break both (latencies of ~1.8e13 ms, or the clock
/// going back). The tolerance on latencies is the histogram's (its max is the top of a
/// bucket).
fn sane(r: &Replication) -> bool {
    let u = r.figures.utilization;
    r.figures.latency_ms.max <= r.sim_time_s * 1e3 * (1.0 + 2.0 * HIST_TOL)
        && [u.cores, u.lock, u.threads, u.event_loop].iter().all(|x| (0.0..=1.0 + 1e-9).contains(x))
}

#[test]
fn huge_draws_saturate_the_clock_instead_of_wrapping() {
    // 20,000 requests of 1e9 ms share one core: each would finish after 2e19 ns, past the
    // u64 clock's end (1.8e19 ns); a heavy-tailed cost gets there in single draws. The
    // loop's 1 µs per request moves the clock off 0 first, so that a wrapped time would lie
    // before now.
    for cost in ["1e9", "{ dist = \"lognormal\", mean = 1e9, cv = 1e3 }"] {
        let r = one(&format!(
            "[system]\ncores = 1\n[worker]\nthreads = 20000\nqueue_limit = 20000\n\
             [clients]\nusers = 20000\n[workload]\nnew_tokens = 0\n\
             [cost]\nloop_in_free_ms = 0.001\nrequest_free_ms = {cost}\n\
             [run]\nrequests = 10\nwarmup_requests = 0\nmax_sim_s = 1e9\n"
        ));
        assert!(sane(&r), "{cost}: {r:?}");
        assert!(r.sim_time_s <= 1e9, "{cost}: {r:?}");
        assert_eq!(r.arrived, r.rejected + r.finished + r.in_system, "{cost}: {r:?}");
        if cost == "1e9" {
            assert_eq!((r.truncation, r.finished), (Some(Truncation::MaxSimTime), 0), "{r:?}");
        }
    }
}

#[test]
fn an_unstable_open_system_stops_at_its_arrival_cap() {
    // Capacity 4 cores / 10 ms = 400 req/s.
    let text = |rate: f64| {
        format!(
            "[system]\ncores = 4\n[worker]\nthreads = 4\nqueue_limit = 50\n\
             [clients]\nkind = \"open\"\nrate_rps = {rate:e}\n[workload]\nnew_tokens = 0\n\
             [cost]\nrequest_free_ms = 10\n[run]\nrequests = 1000\nwarmup_requests = 100\nreplications = 2\n"
        )
    };
    // Offered 1e6 req/s: it stops after 10 × 1100 arrivals, nearly all refused.
    let sc = scenario(&text(1e6));
    let r = sim::run_replication(&sc, 0).unwrap();
    let cap = sim::UNSTABLE_ARRIVALS_PER_REQUEST * 1100;
    assert_eq!((r.truncation, r.arrived), (Some(Truncation::ArrivalCap), cap), "{r:?}");
    assert!(r.rejected > cap - 100, "{r:?}");
    let report = sim::simulate(&sc).unwrap();
    assert!(report.stability.unstable && report.truncated, "{report:?}");
    assert_eq!(report.truncated_by, [Truncation::ArrivalCap]);
    // Offered 1.5 × its capacity, it still measures run.requests before the cap: refused
    // requests, not truncated.
    let r = sim::run_replication(&scenario(&text(600.0)), 0).unwrap();
    assert_eq!((r.truncation, r.completed), (None, 1000), "{r:?}");
    assert!(r.rejected > 0 && r.arrived < cap, "{r:?}");
}

/// Two requests of 1 ms under the fair GIL (whose drop request waits for the hand-off),
/// each on its own thread and core, with a 1 µs switch interval; `cost` and `run` are more
/// lines of those sections.
fn tiny_switch_interval(cost: &str, run: &str) -> Replication {
    one(&format!(
        "[system]\ncores = 2\n[worker]\nthreads = 2\nlock = \"fair-gil\"\nswitch_interval_ms = 0.001\n\
         [clients]\nkind = \"burst\"\nburst = 2\n[workload]\nnew_tokens = 0\n\
         [cost]\nrequest_locked_ms = 1\n{cost}[run]\nmax_sim_s = 1e9\n{run}"
    ))
}

#[test]
fn the_event_budget_stops_a_run_that_would_take_hours() {
    // Two users with requests of 1e9 ms under a 1 µs switch interval: 2e15 drop requests
    // before the first reply.
    let r = one("[system]\ncores = 2\n[worker]\nthreads = 2\nlock = \"gil\"\nswitch_interval_ms = 0.001\n\
         [clients]\nusers = 2\n[workload]\nnew_tokens = 0\n[cost]\nrequest_locked_ms = 1e9\n\
         [run]\nmax_sim_s = 1e9\nmax_events = 100000\n");
    assert_eq!((r.truncation, r.events, r.finished), (Some(Truncation::MaxEvents), 100_000, 0), "{r:?}");
}

#[test]
fn a_gil_hand_off_longer_than_the_switch_interval_still_makes_progress() {
    // A hand-off of up to 100 µs against a 1 µs interval. Were the holder dropped while
    // being woken, every tenure would pay the hand-off again and do nothing. As in CPython,
    // the drop request waits until the hand-off is paid, then one interval, so each tenure
    // does 1 µs of work. A waiter pays no more of the hand-off than it has waited, so no
    // tenure is longer than 101 µs: with the full hand-off every time (tenures of 101 µs
    // after A's first microsecond) B would finish at 0.001 + 1999 × 0.101 ms, A one tenure
    // earlier; and the two requests' 2 ms of work run one at a time.
    let r = tiny_switch_interval("handoff_us = 100\n", "max_events = 1000000\n");
    assert_eq!((r.truncation, r.finished), (None, 2), "{r:?}");
    let (a_ms, b_ms) = (0.001 + 1998.0 * 0.101, 0.001 + 1999.0 * 0.101);
    let l = r.figures.latency_ms;
    assert!(l.mean <= (a_ms + b_ms) / 2.0 * (1.0 + 1e-9), "{l:?}");
    assert!(l.max <= b_ms * (1.0 + HIST_TOL) && l.max >= 2.0, "{l:?}");
}

#[test]
fn steps_that_cost_nothing_cost_no_time_to_simulate() {
    // A million tokens of ten thousand release points that cost nothing: skipped, not
    // walked (1e10 empty slices per request) — constant zeros or zeros drawn.
    for tokens in ["token_locked_ms = 0\n", "token_locked_ms = { dist = \"empirical\", samples = [0] }\n"] {
        let r = one(&format!(
            "[workload]\nnew_tokens = 1e6\n[cost]\nrequest_free_ms = 1\nrelease_points = 10000\n{tokens}\
             [run]\nrequests = 3\nwarmup_requests = 0\n"
        ));
        assert_eq!(r.completed, 3, "{r:?}");
        assert!(close(r.figures.latency_ms.mean, 1.0, 1e-9), "{:?}", r.figures.latency_ms);
    }
    // Batched steps that cost nothing, a million in a row, end in a loop, not a recursion
    // as deep (which overflowed the stack).
    for mode in ["static", "continuous"] {
        let r = one(&format!(
            "[workload]\nnew_tokens = 1e6\n[cost]\nloop_in_ms = 1\n[batching]\nmode = \"{mode}\"\nmax_batch = 1\n\
             [run]\nrequests = 3\nwarmup_requests = 0\n"
        ));
        assert_eq!(r.completed, 3, "{mode}: {r:?}");
    }
}

/// Largest mean (and value) of a distribution, and bound on every duration (ms).
const MAX_MS: f64 = 1e9;

/// A log-uniform draw in `[lo, hi]` from `u` in `[0, 1]`, clamped so rounding never leaves
/// the range.
fn log_uniform(lo: f64, hi: f64, u: f64) -> f64 {
    (lo.ln() + u * (hi.ln() - lo.ln())).exp().clamp(lo, hi)
}

/// A mean (ms): usually a few ms, so requests contend; one time in four anywhere from 1e-6
/// to the 1e9 ms limit, log-uniformly.
fn magnitude(pick: u8, u: f64, typical: f64) -> f64 {
    if pick % 4 == 0 { log_uniform(1e-6, MAX_MS, u) } else { typical }
}

/// A distribution in scenario syntax, from a kind index, a mean (ms) and `u` in [0, 1]
/// for its spread: every kind, cvs log-uniform over the whole accepted [1e-6, 1e3].
fn dist(kind: u8, mean: f64, u: f64) -> String {
    let m = mean.max(1e-6);
    let cv = log_uniform(1e-6, 1e3, u);
    match kind % 8 {
        0 => format!("{mean:e}"),
        1 => format!("{{ dist = \"exponential\", mean = {m:e} }}"),
        2 => format!("{{ dist = \"lognormal\", mean = {m:e}, cv = {cv:e} }}"),
        3 => format!("{{ dist = \"gamma\", mean = {m:e}, cv = {cv:e} }}"),
        4 => format!("{{ dist = \"uniform\", min = 0, max = {:e} }}", (2.0 * mean).min(MAX_MS)),
        5 => format!("{{ dist = \"empirical\", samples = [0, {:e}, {:e}] }}", mean, (2.0 * mean).min(MAX_MS)),
        6 => format!("{{ dist = \"empirical\", samples = [{mean:e}] }}"),
        _ => format!(
            "{{ dist = \"sum\", of = [{:e}, {{ dist = \"exponential\", mean = {:e} }}] }}",
            m / 2.0,
            m / 2.0
        ),
    }
}

/// Simulated steps one random case may take, so the suite stays quick whatever the
/// magnitudes: tokens × release points and request counts shrink to fit.
const STEP_BUDGET: f64 = 4e5;

/// Events one random case may take (`run.max_events`), so the suite stays quick whatever
/// the rates, switch intervals and simulated times.
const EVENT_BUDGET: u64 = 250_000;

/// Arrival times (ms) of a `trace` client: sorted draws, log-uniform up to the limit.
fn trace_times(us: &[f64]) -> Vec<f64> {
    let mut t: Vec<f64> =
        us.iter().map(|&u| if u < 0.1 { 0.0 } else { log_uniform(1e-3, MAX_MS, u) }).collect();
    t.sort_by(f64::total_cmp);
    t
}

/// A random valid scenario: its text and, for `trace` clients, the arrival times.
#[derive(Debug, Clone)]
struct Case {
    text: String,
    trace: Vec<f64>,
}

prop_compose! {
    fn random_scenario()(
        (cores, workers, threads, big_threads, handler, lock, balancer, kind) in
            (1u32..6, 1u32..4, 1u32..8, any::<u8>(), 0usize..3, 0usize..3, 0usize..5, 0usize..4),
        (slice, slice_u) in (any::<bool>(), 0.0f64..1.0),
        (loadgen_u, loadgen_shares) in (0.0f64..1.0, any::<bool>()),
        (users, think, rate_u, burst, trace_us) in
            (1u32..20, (any::<u8>(), any::<u8>(), 0.0f64..5.0, 0.0f64..1.0, 0.0f64..1.0),
             0.0f64..1.0, 1u32..60, prop::collection::vec(0.0f64..1.0, 1..50)),
        (switch_u, handoff_u, slices_u, tokens, tokens_u, loop_lock) in
            (0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0, 0u32..5, (any::<u8>(), 0.0f64..1.0), any::<bool>()),
        costs in prop::collection::vec((any::<u8>(), any::<u8>(), 0.0f64..2.0, 0.0f64..1.0, 0.0f64..1.0), 7),
        (queue_limit, requests, warmup, max_sim_u, budget_u) in
            (20u32..60, 20u64..300, 0u64..30, 0.0f64..1.0, 0.0f64..1.0),
        (batching, max_batch, max_wait_u) in (0usize..3, 1u32..6, 0.0f64..1.0),
        step in (any::<u8>(), any::<u8>(), 0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0),
        seq in (any::<u8>(), any::<u8>(), 0.0f64..0.5, 0.0f64..1.0, 0.0f64..1.0),
    ) -> Case {
        let batching = ["none", "static", "continuous"][batching];
        let handler = ["sync", "async-blocking", "async-offload"][handler];
        let lock = ["none", "mutex", "gil"][lock];
        let balancer = ["round-robin", "random", "least-outstanding", "hash", "accept"][balancer];
        let kind = ["closed", "open", "burst", "trace"][kind];
        // Now and then a pool at the limit on threads in all (loop and scheduler included).
        let threads = if big_threads % 16 == 0 { 1_000_000 / workers - 2 } else { threads };
        let switch_ms = log_uniform(1e-3, MAX_MS, switch_u);
        let handoff_us = if handoff_u < 0.2 { 0.0 } else { log_uniform(1e-3, 1e6, handoff_u) };
        let tokens = if tokens_u.0 % 4 == 0 { log_uniform(1.0, 5e3, tokens_u.1).round() as u32 } else { tokens };
        let slices = log_uniform(1.0, 1e4, slices_u).round() as u32;
        let slices = slices.min((9_000 / tokens.max(1)).max(1));
        // Long requests: few of them, so a case stays within its budget of steps.
        let heavy = tokens * slices > 100;
        let few = |n: u64| if heavy { n.min(4) } else { n };
        let (users, burst, queue_limit) = (few(users.into()), few(burst.into()), few(queue_limit.into()));
        let (requests, warmup) = (few(requests), few(warmup).min(if heavy { 2 } else { 30 }));
        let per_request = f64::from(tokens * slices) * 2.0 + 6.0;
        let population = (requests + warmup + users + burst) as f64 + f64::from(workers) * queue_limit as f64;
        assert!(per_request * population <= STEP_BUDGET * 2.0, "{per_request} × {population}");
        let rate = log_uniform(1e-6, 1e6, rate_u);
        let trace = trace_times(&trace_us[..few(trace_us.len() as u64) as usize]);
        // Any simulated time: the event budget bounds open arrivals and GIL drops. One case
        // in eight gets a budget of a few events, which truncates it.
        let max_sim_s = log_uniform(1e-3, 1e9, max_sim_u);
        let max_events =
            if budget_u < 0.125 { log_uniform(1.0, 1e3, budget_u * 8.0) as u64 } else { EVENT_BUDGET };
        let max_wait = if max_wait_u < 0.3 { 0.0 } else { log_uniform(1e-3, MAX_MS, max_wait_u) };
        let think = dist(think.0, magnitude(think.1, think.3, think.2), think.4);
        let c: Vec<String> = costs.iter().map(|&(k, p, m, u, s)| dist(k, magnitude(p, u, m), s)).collect();
        // A full batch's mean step stays within the limit on any duration.
        let per_seq = MAX_MS / f64::from(max_batch + 1);
        let step_d = dist(step.0, magnitude(step.1, step.3, step.2).min(per_seq), step.4);
        let seq_d = dist(seq.0, magnitude(seq.1, seq.3, seq.2).min(per_seq), seq.4);
        // Time slices half the time, from a microsecond to a second.
        let (scheduler, slice_ms) = (if slice { "slice" } else { "ps" }, log_uniform(1e-3, 1e3, slice_u));
        // The load generator's CPU half the time, from 0.1 µs to 100 ms a request.
        let loadgen_ms = if loadgen_u < 0.5 { 0.0 } else { log_uniform(1e-4, 100.0, loadgen_u * 2.0 - 1.0) };
        let text = format!(
            "[system]\ncores = {cores}\nworkers = {workers}\nbalancer = \"{balancer}\"\n\
             scheduler = \"{scheduler}\"\nslice_ms = {slice_ms:e}\n\
             [worker]\nhandler = \"{handler}\"\nthreads = {threads}\nlock = \"{lock}\"\n\
             switch_interval_ms = {switch_ms:e}\nqueue_limit = {queue_limit}\n\
             [clients]\nkind = \"{kind}\"\nusers = {users}\nthink_ms = {think}\nrate_rps = {rate:e}\n\
             burst = {burst}\ncpu_ms = {loadgen_ms:e}\nshares_cores = {loadgen_shares}\n{}\
             [workload]\nnew_tokens = {tokens}\n\
             [cost]\nloop_in_ms = {}\nloop_out_ms = {}\nloop_lock = {loop_lock}\n\
             request_locked_ms = {}\nrequest_free_ms = {}\ntoken_locked_ms = {}\ntoken_free_ms = {}\n\
             rtt_ms = {}\nrelease_points = {slices}\nhandoff_us = {handoff_us:e}\n\
             [batching]\nmode = \"{batching}\"\nmax_batch = {max_batch}\nmax_wait_ms = {max_wait:e}\n\
             step_locked_ms = {step_d}\nseq_free_ms = {seq_d}\n\
             [run]\nrequests = {requests}\nwarmup_requests = {warmup}\nreplications = 1\n\
             max_sim_s = {max_sim_s:e}\nmax_events = {max_events}\n",
            if kind == "trace" { "trace = \"arrivals.csv\"\n" } else { "" },
            c[0], c[1], c[2], c[3], c[4], c[5], c[6],
        );
        Case { text, trace }
    }
}

/// Loads a case: writes its trace, parses, removes the files.
fn load_case(case: &Case) -> Result<Scenario, servesim::scenario::ScenarioError> {
    let dir = crate::scratch("prop");
    let csv: String = case.trace.iter().map(|t| format!("{t:e}\n")).collect();
    std::fs::write(dir.path().join("arrivals.csv"), csv).unwrap();
    Scenario::parse(&case.text, Path::new("random.toml"), dir.path(), &[])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any valid scenario — every client kind and distribution, magnitudes up to the edges
    /// of the limits — runs without panicking, conserves requests (every arrival is
    /// refused, completed or still inside), obeys basic bounds, and reproduces exactly.
    #[test]
    fn random_scenarios_conserve_requests_and_reproduce(case in random_scenario()) {
        let sc = match load_case(&case) {
            Ok(sc) => sc,
            // users > queue_limit is refused by design; nothing else may be.
            Err(e) => { prop_assert!(e.to_string().contains("queue_limit"), "{e}\n{}", case.text); return Ok(()); }
        };
        let Ok(a) = sim::run_replication(&sc, 0) else {
            // Only the documented refusal: zero work with zero think time.
            prop_assert!(sim::check_supported(&sc).is_err());
            return Ok(());
        };
        prop_assert_eq!(a.arrived, a.rejected + a.finished + a.in_system, "{:?}", a);
        prop_assert!(sane(&a), "{a:?}");
        prop_assert_eq!(a.truncated, a.truncation.is_some());
        prop_assert!(a.events <= sc.run.max_events, "{a:?}");
        if a.truncation == Some(Truncation::MaxEvents) {
            prop_assert_eq!(a.events, sc.run.max_events);
        }
        if sc.clients.kind == servesim::scenario::ClientKind::Open && sim::stability(&sc).unstable {
            let cap = sim::UNSTABLE_ARRIVALS_PER_REQUEST * (sc.run.requests + sc.run.warmup_requests);
            prop_assert!(a.arrived <= cap, "{} arrivals, cap {cap}", a.arrived);
        }
        let l = a.figures.latency_ms;
        prop_assert!(l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.max * (1.0 + 1e-3), "{l:?}");
        prop_assert!(a.sim_time_s <= sc.run.max_sim_s * (1.0 + 1e-9) + 1e-9, "{} > {}", a.sim_time_s, sc.run.max_sim_s);
        let b = sim::run_replication(&sc, 0).unwrap();
        prop_assert_eq!(a, b);
    }
}

/// Paths a random scenario may set: every field, a dist's keys, and a few that do not exist.
const PATHS: &[&str] = &[
    "name",
    "description",
    "system.cores",
    "system.workers",
    "system.balancer",
    "system.worker_memory_mb",
    "system.seq_memory_mb",
    "worker.handler",
    "worker.threads",
    "worker.lock",
    "worker.switch_interval_ms",
    "worker.queue_limit",
    "clients.kind",
    "clients.users",
    "clients.think_ms",
    "clients.rate_rps",
    "clients.arrivals",
    "clients.burst",
    "clients.trace",
    "workload.new_tokens",
    "workload.prompt_chars",
    "cost.loop_in_ms",
    "cost.loop_out_ms",
    "cost.loop_lock",
    "cost.loop_in_free_ms",
    "cost.loop_out_free_ms",
    "cost.request_locked_ms",
    "cost.request_free_ms",
    "cost.token_locked_ms",
    "cost.token_free_ms",
    "cost.rtt_ms",
    "cost.release_points",
    "cost.handoff_us",
    "cost.switch_us",
    "cost.calibration",
    "batching.mode",
    "batching.max_batch",
    "batching.max_wait_ms",
    "batching.step_locked_ms",
    "batching.step_free_ms",
    "batching.seq_locked_ms",
    "batching.seq_free_ms",
    "run.requests",
    "run.warmup_requests",
    "run.replications",
    "run.seed",
    "run.max_sim_s",
    "run.max_events",
    "cost.token_free_ms.mean",
    "cost.rtt_ms.of",
    "worker",
    "worker.threads.x",
    "nope",
    "run.nope.deeper",
];

/// A TOML value of any type and magnitude, written as text (some not valid TOML at all).
fn any_value() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| if f.is_nan() {
            "nan".into()
        } else if f.is_infinite() {
            format!("{}inf", if f < 0.0 { "-" } else { "" })
        } else {
            format!("{f:e}")
        }),
        (0u32..400).prop_map(|e| format!("1e{e}")),
        (0u32..400).prop_map(|e| format!("1e-{e}")),
        Just("99999999999999999999".to_string()),
        Just("-99999999999999999999".to_string()),
        (0u64..2_000_000).prop_map(|n| n.to_string()),
    ];
    let word = prop_oneof![
        Just("sync"),
        Just("gil"),
        Just("open"),
        Just("trace"),
        Just("static"),
        Just("hash"),
        Just("missing.csv"),
        Just(""),
        Just("nan"),
    ]
    .prop_map(|w| format!("\"{w}\""));
    let kind = prop_oneof![
        Just("const"),
        Just("exponential"),
        Just("lognormal"),
        Just("gamma"),
        Just("uniform"),
        Just("empirical"),
        Just("sum"),
        Just("weibull"),
    ];
    let param = prop_oneof![
        Just("mean"),
        Just("cv"),
        Just("min"),
        Just("max"),
        Just("value"),
        Just("samples"),
        Just("of"),
        Just("file")
    ];
    let leaf = prop_oneof![number, word, any::<bool>().prop_map(|b| b.to_string()), "\\PC{0,12}"];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            (kind.clone(), prop::collection::vec((param.clone(), inner), 0..4)).prop_map(|(k, ps)| {
                let ps: Vec<String> = ps.iter().map(|(p, v)| format!(", {p} = {v}")).collect();
                format!("{{ dist = \"{k}\"{} }}", ps.concat())
            }),
        ]
    })
}

/// Scenario text: section headers, dotted keys and values of any kind, and junk lines.
fn any_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        4 => (prop::sample::select(PATHS), any_value()).prop_map(|(p, v)| format!("{p} = {v}")),
        1 => prop::sample::select(PATHS).prop_map(|p| format!("[{p}]")),
        1 => "\\PC{0,30}",
    ];
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Random scenario text and random `--set` arguments never make parsing panic: each is
    /// loaded or refused with a message.
    #[test]
    fn random_text_and_overrides_never_panic(
        text in any_text(),
        sets in prop::collection::vec(
            prop_oneof![
                (prop::sample::select(PATHS), any_value()).prop_map(|(p, v)| format!("{p}={v}")),
                "\\PC{0,30}",
            ],
            0..4,
        ),
    ) {
        let overrides: Vec<Override> = sets.iter().filter_map(|s| s.parse().ok()).collect();
        let dir = crate::scratch("prop");
        match Scenario::parse(&text, Path::new("random.toml"), dir.path(), &overrides) {
            Ok(sc) => prop_assert!(sc.validate().is_ok()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

/// Two requests of 4 tokens, at t = 0 and t = 2 ms; a step of B sequences costs
/// 1 + 0.5·B ms (lock-free), no other work.
fn batching_case(mode: &str) -> Replication {
    let dir = crate::scratch(&format!("batch-{mode}"));
    std::fs::write(dir.path().join("arrivals.csv"), "0\n2\n").unwrap();
    let text = format!(
        "[clients]\nkind = \"trace\"\ntrace = \"arrivals.csv\"\n[workload]\nnew_tokens = 4\n\
         [batching]\nmode = \"{mode}\"\nmax_batch = 2\nmax_wait_ms = 5\nstep_free_ms = 1\nseq_free_ms = 0.5\n"
    );
    let sc = Scenario::parse(&text, Path::new("batch.toml"), dir.path(), &[]).unwrap();
    sim::run_replication(&sc, 0).unwrap()
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
    // Stages: A joins at once, B waits 1 ms to join; each is in steps of 7 ms in all.
    let s = r.figures.stages_ms;
    assert!(close(s.queue.mean, 0.5, 1e-9) && close(s.free.mean, 7.0, 1e-9), "{s:?}");
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

#[test]
fn a_waiter_pays_no_more_of_the_hand_off_than_it_has_waited() {
    // Two threads on two cores alternate 3 µs holding the GIL with 30 µs without it, and a
    // hand-off costs 34 µs. A waiter asks while the holder finishes its short hold, so it
    // pays about 3 µs, not 34: the lock stays mostly free and the cores bind. (Were every
    // hand-off paid whole, it would outlast the lock-free slice, every acquisition would
    // find a waiter being woken, and the lock would be busy all the time: a convoy.)
    let r = one("[system]\ncores = 2\n[worker]\nthreads = 2\nlock = \"fair-gil\"\n[clients]\nusers = 8\n\
         [workload]\nnew_tokens = 20\n[cost]\nloop_lock = false\ntoken_locked_ms = 0.003\n\
         token_free_ms = 0.03\nrelease_points = 1\nhandoff_us = 34\n\
         [run]\nrequests = 3000\nwarmup_requests = 300\n");
    let u = r.figures.utilization;
    assert!(u.lock < 0.5 && u.cores > 0.9, "{u:?}");
}

#[test]
fn a_given_split_puts_each_users_connection_on_its_worker() {
    // Two workers of one mutex each on 2 cores, 10 ms held per request, 4 closed users
    // that think 0 ms. With all four users on worker 0 its mutex serializes them:
    // 100 req/s. Two and two: each worker's mutex is busy, 200 req/s. Three and one:
    // still 200 req/s, but worker 1's lone user is served at once while worker 0's three
    // queue behind each other — latency 30 ms there against 10 ms, 20 ms on average.
    let text = |split: &str| {
        format!(
            "[system]\ncores = 2\nworkers = 2\nbalancer = \"hash\"\nsplit = {split}\n\
             [worker]\nlock = \"mutex\"\n[clients]\nusers = 4\n[workload]\nnew_tokens = 0\n\
             [cost]\nrequest_locked_ms = 10\n[run]\nrequests = 2000\nwarmup_requests = 100\n"
        )
    };
    let one_worker = one(&text("[4, 0]")).figures;
    let even = one(&text("[2, 2]")).figures;
    let uneven = one(&text("[3, 1]")).figures;
    assert!(close(one_worker.throughput_rps, 100.0, 1e-3), "{}", one_worker.throughput_rps);
    assert!(close(even.throughput_rps, 200.0, 1e-3), "{}", even.throughput_rps);
    assert!(close(uneven.throughput_rps, 200.0, 1e-3), "{}", uneven.throughput_rps);
    assert!(close(uneven.latency_ms.max, 30.0, HIST_TOL), "{:?}", uneven.latency_ms);
    // Half the requests at 30 ms, half at 10 ms.
    assert!(close(uneven.latency_ms.mean, 20.0, 0.01), "{:?}", uneven.latency_ms);
    // The split must describe the run: one count per worker, adding up to the users.
    for (split, want) in
        [("[4]", "has 1 entries for 2 workers"), ("[2, 1]", "adds up to 3 users, but clients.users is 4")]
    {
        let e = Scenario::parse(&text(split), Path::new("t.toml"), Path::new("."), &[]).unwrap_err();
        assert!(e.to_string().contains("system.split") && e.to_string().contains(want), "{e}");
    }
    let e = Scenario::parse(
        &text("[2, 2]").replace("balancer = \"hash\"", "balancer = \"random\""),
        Path::new("t.toml"),
        Path::new("."),
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("system.split applies to balancer = \"hash\""), "{e}");
}

#[test]
fn a_shared_accept_queue_gives_users_that_connect_together_to_one_worker() {
    // Two workers of one mutex each on 2 cores, 10 ms held per request, 4 closed users.
    // Round-robin spreads the requests: both mutexes busy, 200 req/s. A listening socket
    // the workers share (uvicorn --workers) gives all four connections, opened together, to
    // the first worker to wake: its mutex serializes them, 100 req/s, and the second
    // worker adds nothing.
    let text = |balancer: &str, clients: &str| {
        format!(
            "[system]\ncores = 2\nworkers = 2\nbalancer = \"{balancer}\"\n\
             [worker]\nlock = \"mutex\"\n[clients]\n{clients}\n[workload]\nnew_tokens = 0\n\
             [cost]\nrequest_locked_ms = 10\n[run]\nrequests = 2000\nwarmup_requests = 100\n"
        )
    };
    let rr = one(&text("round-robin", "users = 4")).figures;
    let accept = one(&text("accept", "users = 4")).figures;
    assert!(close(rr.throughput_rps, 200.0, 1e-3), "{}", rr.throughput_rps);
    assert!(close(accept.throughput_rps, 100.0, 1e-3), "{}", accept.throughput_rps);
    // A burst's connections are opened together too: 8 requests queue on one mutex, the
    // last done at 80 ms (40 ms if the two workers shared them).
    let burst = one(&text("accept", "kind = \"burst\"\nburst = 8")).figures;
    assert!(close(burst.latency_ms.max, 80.0, HIST_TOL), "{:?}", burst.latency_ms);
    // The open loop's requests come one by one, each to a worker whose event loop is idle:
    // with the whole request on the loop (async-blocking), a worker busy with one request
    // does not take the next while the other is idle. Constant gaps of 6 ms to requests
    // of 10 ms: on one worker they would queue without end, on two none waits.
    let open = one(&text("accept", "kind = \"open\"\nrate_rps = 166\narrivals = \"constant\"")
        .replace("lock = \"mutex\"", "handler = \"async-blocking\""))
    .figures;
    assert!(close(open.latency_ms.max, 10.0, HIST_TOL), "{:?}", open.latency_ms);
}

#[test]
fn the_load_generators_cpu_is_in_each_latency_and_on_the_cores_it_shares() {
    let text = |users: u32, shares: bool| {
        format!(
            "[system]\ncores = 1\n[worker]\nthreads = 1\n[clients]\nusers = {users}\ncpu_ms = 2\n\
             shares_cores = {shares}\n[workload]\nnew_tokens = 0\n[cost]\nrequest_free_ms = 10\n\
             [run]\nrequests = 2000\nwarmup_requests = 100\n"
        )
    };
    // One user: 1 ms to send, 10 ms served, 1 ms to read the reply, wherever the load
    // generator runs.
    for shares in [false, true] {
        let f = one(&text(1, shares)).figures;
        assert!(close(f.latency_ms.mean, 12.0, HIST_TOL), "shares {shares}: {:?}", f.latency_ms);
        assert!(close(f.throughput_rps, 1000.0 / 12.0, 1e-3), "shares {shares}: {}", f.throughput_rps);
    }
    // Two users, one thread on one core: on a CPU of its own the load generator sends the
    // next request while the server serves the other, so the core is always busy with the
    // server's 10 ms a request (100 req/s); sharing the core, each request costs it 12 ms of
    // CPU (83.3 req/s).
    let own = one(&text(2, false)).figures;
    let shared = one(&text(2, true)).figures;
    assert!(close(own.throughput_rps, 100.0, 1e-3), "{}", own.throughput_rps);
    assert!(close(shared.throughput_rps, 1000.0 / 12.0, 1e-3), "{}", shared.throughput_rps);
    // Without it, nothing changes.
    let none = one(&text(2, true).replace("cpu_ms = 2\n", "")).figures;
    assert!(close(none.throughput_rps, 100.0, 1e-3), "{}", none.throughput_rps);
}
