//! The simulator's CPython GIL, event by event, on hand-made two-thread sequences.

use crate::scenario::Scenario;
use std::path::Path;

/// The GIL's trace of two requests on two threads (1 and 2) and two cores, each wake-up
/// 30 µs and free of CPU: `(µs, thread, what)` for the first `n` entries.
fn trace(cost: &str, interval_ms: f64, n: usize) -> Vec<(u64, u32, &'static str)> {
    trace_of(2, 2, &format!("vain_wake_us = 0\n{cost}"), interval_ms, n)
}

/// As `trace`, with `threads` threads and requests, `cores` cores, and the wake-up's CPU as
/// `cost` says.
fn trace_of(
    threads: u32,
    cores: u32,
    cost: &str,
    interval_ms: f64,
    n: usize,
) -> Vec<(u64, u32, &'static str)> {
    let toml = format!(
        "[system]\ncores = {cores}\n[worker]\nthreads = {threads}\nlock = \"gil\"\nswitch_interval_ms = {interval_ms}\n\
         [clients]\nkind = \"burst\"\nburst = {threads}\n[workload]\nnew_tokens = 1\n\
         [cost]\nwake_us = 30\n{cost}"
    );
    let sc = Scenario::parse(&toml, Path::new("t"), Path::new("."), &[]).unwrap();
    let mut sys = crate::sim::system::System::new(&sc, 0);
    sys.run_loop_for_test(10_000);
    sys.trace.iter().take(n).map(|&(t, th, what)| (t / 1000, th, what)).collect()
}

#[test]
fn the_releaser_barges_back_in_and_its_waiter_wakes_in_vain() {
    // One token: 3 slices of 100 µs of bytecode, each followed by a 20 µs C call.
    // Thread 2 is signalled at every release (100, 220, 340 µs) and woken 30 µs later;
    // twice it finds that thread 1, back from its 20 µs call, has taken the GIL again.
    let got = trace("token_locked_ms = 0.3\ntoken_free_ms = 0.06\nrelease_points = 3\n", 5.0, 14);
    let want = [
        (0, 1, "take (switch)"),
        (0, 2, "sleep"),
        (100, 1, "release point"),
        (100, 2, "signalled"),
        (130, 2, "woken"),
        (130, 2, "vain"),
        (220, 1, "release point"),
        (220, 2, "signalled"),
        (250, 2, "woken"),
        (250, 2, "vain"),
        (340, 1, "release point"),
        (340, 2, "signalled"),
        (370, 2, "woken"),
        (370, 2, "take (switch)"),
    ];
    assert_eq!(got, want);
}

#[test]
fn a_timed_out_waiter_asks_and_the_holder_is_switched_out() {
    // 1 ms of bytecode with no release point, a 200 µs switch interval. Thread 2's wait
    // runs out at 200 µs; woken at 230 with no switch since, it asks for a drop and waits
    // again; thread 1 drops at once and signals it; thread 2 takes the GIL at 260, which
    // wakes thread 1 from its forced-switch wait at 290: it finds the GIL taken, and its
    // own wait runs out at 490 — and so on, 260 µs of work a turn.
    let got = trace("request_locked_ms = 1\n", 0.2, 16);
    let want = [
        (0, 1, "take (switch)"),
        (0, 2, "sleep"),
        (200, 2, "timed out"),
        (230, 2, "woken"),
        (230, 2, "drop request"),
        (230, 1, "forced drop"),
        (230, 2, "signalled"),
        (260, 2, "woken"),
        (260, 2, "take (switch)"),
        (290, 1, "woken"),
        (290, 1, "vain"),
        (490, 1, "timed out"),
        (520, 1, "woken"),
        (520, 1, "drop request"),
        (520, 2, "forced drop"),
        (520, 1, "signalled"),
    ];
    assert_eq!(got, want);
}

#[test]
fn a_signal_costs_its_signaller_before_its_c_call_goes_on() {
    // As the first test, each signal costing the releaser 5 µs (`cost.signal_us`): its C
    // calls run 105–125, 230–250 and 355–375, so its releases come at 100, 225 and 350, and
    // thread 2, woken at 380, finds the run over and takes the GIL.
    let got =
        trace("token_locked_ms = 0.3\ntoken_free_ms = 0.06\nrelease_points = 3\nsignal_us = 5\n", 5.0, 14);
    let want = [
        (0, 1, "take (switch)"),
        (0, 2, "sleep"),
        (100, 1, "release point"),
        (100, 2, "signalled"),
        (130, 2, "woken"),
        (130, 2, "vain"),
        (225, 1, "release point"),
        (225, 2, "signalled"),
        (255, 2, "woken"),
        (255, 2, "vain"),
        (350, 1, "release point"),
        (350, 2, "signalled"),
        (380, 2, "woken"),
        (380, 2, "take (switch)"),
    ];
    assert_eq!(got, want);
}

#[test]
fn a_signaller_that_goes_on_running_keeps_its_core() {
    // One core. Thread 1's release at 100 signals thread 2; thread 1 goes on (its C call,
    // 100–120), so no core is idle: thread 2 is woken as on busy cores — 6 µs, preempting
    // its signaller, at no signal cost — finds the GIL free (thread 1 in its C call) and
    // takes it at 106. Counted as idle while it signalled, thread 1 paid 5 µs for the
    // signal and thread 2 woke after 30 µs, in vain.
    let got = trace_of(
        2,
        1,
        "vain_wake_us = 0\nwake_busy_us = 6\ntoken_locked_ms = 0.3\ntoken_free_ms = 0.06\n\
         release_points = 3\nsignal_us = 5\n",
        5.0,
        6,
    );
    let want = [
        (0, 1, "take (switch)"),
        (0, 2, "sleep"),
        (100, 1, "release point"),
        (100, 2, "signalled"),
        (106, 2, "woken"),
        (106, 2, "take (switch)"),
    ];
    assert_eq!(got, want);
}

#[test]
fn a_thread_blocked_on_the_mutex_wakes_in_the_mutex_wake_up() {
    // Thread 2, signalled at 100 and up at 130, spends 9 µs of its 10 µs wake-up CPU, then
    // holds the mutex 139–140 to check. Thread 1's C call ends at 139.5 and it blocks on
    // the mutex; at 140 thread 2 lets it go, finds the GIL free and takes it, and thread 1 —
    // blocked for half a microsecond, its core not halted — takes the mutex 12 µs later
    // (`cost.mutex_wake_us`), not after a parked waiter's 30.
    let cost = "vain_wake_us = 10\ntoken_locked_ms = 0.3\ntoken_free_ms = 0.1185\nrelease_points = 3\n";
    let blocked = |t: &[(u64, u32, &str)]| {
        let at = |th: u32, what: &str| t.iter().find(|e| e.1 == th && e.2 == what).map(|e| e.0);
        at(1, "blocked on the mutex")?;
        Some(at(1, "takes the mutex")? - at(2, "take (switch)")?)
    };
    let got = trace_of(2, 2, &format!("{cost}mutex_wake_us = 12\n"), 5.0, 12);
    assert_eq!(blocked(&got), Some(12), "{got:?}");
    let parked = trace_of(2, 2, cost, 5.0, 12);
    assert_eq!(blocked(&parked), Some(30), "{parked:?}");
}

/// Throughput of four threads on two cores sharing the GIL, with a release every 5.7 µs
/// (4.7 ms of bytecode and 1 ms of C calls in 1,000 slices) and wake-ups of 37 µs; `cost`
/// and `system` add to those sections.
fn four_threads_rps(cost: &str, system: &str) -> f64 {
    let toml = format!(
        "[system]\ncores = 2\n{system}[worker]\nthreads = 4\nlock = \"gil\"\n\
         [clients]\nkind = \"closed\"\nusers = 4\n[workload]\nnew_tokens = 1\n\
         [cost]\nwake_us = 37\ntoken_locked_ms = 4.7\ntoken_free_ms = 1.0\nrelease_points = 1000\n\
         {cost}[run]\nrequests = 400\nwarmup_requests = 40\nreplications = 1\n"
    );
    let sc = Scenario::parse(&toml, Path::new("t"), Path::new("."), &[]).unwrap();
    crate::sim::simulate(&sc).unwrap().figures.throughput_rps
}

#[test]
fn the_mutex_is_free_once_let_go_so_a_running_holder_does_not_queue_behind_sleepers() {
    // Each woken waiter holds the mutex for 1.2 µs (a tenth of a 12 µs wake-up's CPU).
    // glibc's unlock frees the mutex and wakes a blocked thread to try again; the holder,
    // running, takes it meanwhile. Handing the mutex to the sleeping thread instead made
    // every blocked holder wait whole wake-ups behind it: 13 req/s here, against the
    // 175 req/s one thread alone gets.
    let rps = four_threads_rps("vain_wake_us = 12\n", "");
    assert!(rps > 90.0, "{rps:.1} req/s");
}

#[test]
fn signals_slow_the_holder_down_by_what_they_cost_it() {
    // The same four threads, each signal costing the holder 10 µs: nearly every release
    // point signals a sleeper (a wake-up takes 37 µs, a release comes every 5.7 µs).
    let vain = "vain_wake_us = 2\n";
    let free = four_threads_rps(vain, "");
    let costly = four_threads_rps(&format!("{vain}signal_us = 10\n"), "");
    assert!(costly < 0.6 * free, "{costly:.1} vs {free:.1} req/s");
}

/// `four_threads_rps`' scenario with `threads` threads and users and the lock `lock`: the
/// GIL sleeps per request.
fn gil_sleeps(threads: u32, lock: &str) -> f64 {
    gil_figures(threads, lock).gil_sleeps_per_request
}

/// `gil_sleeps`' scenario's figures.
fn gil_figures(threads: u32, lock: &str) -> crate::sim::Figures {
    let toml = format!(
        "[system]\ncores = 2\n[worker]\nthreads = {threads}\nlock = \"{lock}\"\n\
         [clients]\nkind = \"closed\"\nusers = {threads}\n[workload]\nnew_tokens = 1\n\
         [cost]\nwake_us = 37\nvain_wake_us = 2\ntoken_locked_ms = 4.7\ntoken_free_ms = 1.0\n\
         release_points = 1000\n[run]\nrequests = 400\nwarmup_requests = 40\nreplications = 1\n"
    );
    let sc = Scenario::parse(&toml, Path::new("t"), Path::new("."), &[]).unwrap();
    crate::sim::simulate(&sc).unwrap().figures
}

#[test]
fn the_threads_sleeps_on_the_gil_are_counted_per_request() {
    // One thread never waits for the GIL, nor does any thread under another lock.
    assert_eq!(gil_sleeps(1, "gil"), 0.0);
    assert_eq!(gil_sleeps(4, "fair-gil"), 0.0);
    // Four threads: a waiter signalled at a release point (one every 5.7 µs) wakes 37 µs
    // later, finds the GIL taken again and sleeps again — many times a request, but never
    // more than once per release point for each of the three waiters.
    let four = gil_sleeps(4, "gil");
    assert!((100.0..=3000.0).contains(&four), "{four:.1} sleeps a request");
}

#[test]
fn every_thread_is_in_one_gil_state_at_a_time() {
    // Closed loop, as many users as threads, no think time and no work outside the GIL's
    // runs: every thread is always somewhere on the GIL, so the states' means add up to the
    // threads; and where they are follows the mechanism.
    let one = gil_figures(1, "gil").gil_threads;
    assert!((one.in_run - 1.0).abs() < 1e-6, "{one:?}");
    assert_eq!(one.asleep_in_timed_wait + one.blocked_on_mutex + one.being_woken + one.woken_checking, 0.0);
    let g = gil_figures(4, "gil").gil_threads;
    let sum = g.in_run
        + g.asleep_in_timed_wait
        + g.blocked_on_mutex
        + g.being_woken
        + g.woken_checking
        + g.waiting_for_switch;
    assert!((sum - 4.0).abs() < 1e-3, "{sum} threads in all: {g:?}");
    // One thread is in its run at a time (here every wake-up is in vain, so nobody takes
    // the GIL during a C call); the three others wait — mostly being woken: a release comes
    // every 5.7 µs, so a sleeper is signalled almost as soon as it sleeps, and its wake-up
    // takes 37 µs.
    assert!((g.in_run - 1.0).abs() < 0.05, "{g:?}");
    assert!(g.being_woken > 2.0 && g.asleep_in_timed_wait < 0.5, "{g:?}");
    // Another lock leaves them all 0.
    assert_eq!(gil_figures(4, "fair-gil").gil_threads, crate::sim::GilThreads::default());
}

#[test]
fn switches_and_long_tenures_are_reported() {
    // One thread never hands the GIL over, nor does any thread under another lock.
    let one = gil_figures(1, "gil");
    assert_eq!((one.gil_switches_per_request, one.gil_long_tenure_share), (0.0, 0.0));
    let fair = gil_figures(4, "fair-gil");
    assert_eq!((fair.gil_switches_per_request, fair.gil_long_tenure_share), (0.0, 0.0));
    // Four threads trading the GIL at 1,000 release points a request (one every 5.7 µs),
    // their wake-ups 37 µs on average but spread: a woken waiter now and then checks in a
    // holder's C call and gets in, ending a tenure; no tenure lasts a millisecond, so the
    // GIL changes hands many times per request. (With every wake-up exactly 37 µs long, as
    // in `gil_figures`, each check falls in bytecode and the first holder keeps the GIL.)
    let figures = |toml: &str| {
        let sc = Scenario::parse(toml, Path::new("t"), Path::new("."), &[]).unwrap();
        crate::sim::simulate(&sc).unwrap().figures
    };
    let four = figures(
        "[system]\ncores = 2\n[worker]\nthreads = 4\nlock = \"gil\"\n\
         [clients]\nkind = \"closed\"\nusers = 4\n[workload]\nnew_tokens = 1\n\
         [cost]\nwake_us = { dist = \"gamma\", mean = 37, cv = 0.5 }\nvain_wake_us = 2\n\
         token_locked_ms = 4.7\ntoken_free_ms = 1.0\nrelease_points = 1000\n\
         [run]\nrequests = 400\nwarmup_requests = 40\nreplications = 1\n",
    );
    assert!(four.gil_switches_per_request > 5.0, "{four:?}");
    assert!(four.gil_long_tenure_share < 0.2, "{four:?}");
    // Two threads, each request 4.7 ms of bytecode with no release point, each user
    // thinking 1 ms between requests: every tenure is a whole request (the other thread,
    // signalled at its end, gets in while its holder waits for its user), so nearly all
    // the time is in tenures over 1 ms, and the GIL changes hands once a request.
    let two = figures(
        "[system]\ncores = 2\n[worker]\nthreads = 2\nlock = \"gil\"\n\
         [clients]\nkind = \"closed\"\nusers = 2\nthink_ms = 1\n[workload]\nnew_tokens = 1\n\
         [cost]\nwake_us = 37\ntoken_locked_ms = 4.7\n\
         [run]\nrequests = 400\nwarmup_requests = 40\nreplications = 1\n",
    );
    assert!(two.gil_long_tenure_share > 0.95, "{two:?}");
    assert!((0.8..=1.2).contains(&two.gil_switches_per_request), "{two:?}");
}

/// Two threads on 2 cores, one token of `locked_ms` held then 1 ms in a C call, one release
/// point, wake-ups of 37 µs: throughput with a cold start of `cold_us` reached over `tau_ms`.
fn two_threads_cold_rps(locked_ms: f64, cold_us: f64, tau_ms: f64) -> f64 {
    let toml = format!(
        "[system]\ncores = 2\n[worker]\nthreads = 2\nlock = \"gil\"\n\
         [clients]\nkind = \"closed\"\nusers = 2\n[workload]\nnew_tokens = 1\n\
         [cost]\nwake_us = 37\nvain_wake_us = 0\ntoken_locked_ms = {locked_ms}\ntoken_free_ms = 1.0\n\
         release_points = 1\ncold_start_us = {cold_us}\ncold_start_ms = {tau_ms}\n\
         [run]\nrequests = 400\nwarmup_requests = 40\nreplications = 1\n"
    );
    let sc = Scenario::parse(&toml, Path::new("t"), Path::new("."), &[]).unwrap();
    crate::sim::simulate(&sc).unwrap().figures.throughput_rps
}

#[test]
fn a_take_after_a_wait_pays_its_cold_start_under_the_gil() {
    // The GIL passes at every release point: the holder's 4 ms of bytecode, then its waiter
    // wakes (37 µs) while the holder is in its C call, and takes it: 4.037 ms of the GIL a
    // request, 247.7 req/s. A cold start of 500 µs (all of it: τ of 1 µs against a wait of
    // 4 ms) is spent holding the GIL: 4.537 ms a request, 220.4 req/s.
    let warm = two_threads_cold_rps(4.0, 0.0, 5.0);
    let cold = two_threads_cold_rps(4.0, 500.0, 0.001);
    assert!((warm - 1e3 / 4.037).abs() < 0.01 * warm, "{warm:.2}");
    assert!((cold - 1e3 / 4.537).abs() < 0.01 * cold, "{cold:.2}");
    // Over τ = 1 ms, a wait of 4.037 ms reaches 1 − e^(−4.037) of it: 491 µs.
    let partial = two_threads_cold_rps(4.0, 500.0, 1.0);
    let want = 1e3 / (4.037 + 0.5 * (1.0 - (-4.037f64).exp()));
    assert!((partial - want).abs() < 0.01 * want, "{partial:.2} vs {want:.2}");
    // It slows the bytecode that follows at most to half its speed: with none to follow
    // (every request a C call), it costs nothing, bit for bit.
    assert_eq!(
        two_threads_cold_rps(0.0, 500.0, 0.001).to_bits(),
        two_threads_cold_rps(0.0, 0.0, 5.0).to_bits()
    );
}
