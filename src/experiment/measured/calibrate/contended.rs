//! The contended run: clients at once to the scenario's pool behind its lock,
//! and the hand-off cost fitted so that the simulator holds the throughput it held.

use super::client::{Counters, body, counters, send};
use super::{CalibrateError, CalibrateOptions, bare};
use crate::experiment::{CpuTicks, STEAL_LIMIT, stolen_since};
use crate::scenario::{Calibration, Override, Scenario};
use crate::server::client::Connection;
use crate::server::{self, LaunchOptions, ServerConfig, ServerProcess};
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Clients of the contended run: one more than the scenario's cores (at least three), so
/// that waiters for the lock outnumber the cores as in a loaded pool — and a configuration
/// the validation suite does not measure.
fn contenders(sc: &Scenario) -> u32 {
    sc.system.cores.max(2) + 1
}

/// Pool threads of the contended run: the scenario's own pool, and at least one per client.
/// The pool's size is part of what a hand-off costs on the real server, in a way the
/// simulator does not model: two clients on the validation scenario's `fair-gil` held
/// 58–65 req/s with 2 pool threads and 78–81 with 8, in three interleaved passes (the
/// simulator: 68.9 for both). So the cost is fitted on the pool the scenario has.
fn pool_threads(sc: &Scenario) -> u32 {
    sc.worker.threads.max(contenders(sc))
}

/// What the contended run measured.
pub(super) struct Contended {
    /// Requests per second of the measured part.
    throughput_rps: f64,
    /// Lock hand-offs per request.
    handoffs_per_request: f64,
    /// The share of the CPUs' ready time the host stole meanwhile (0–1).
    steal: f64,
}

/// The scenario's request from [`contenders`] clients at once to a pool of [`pool_threads`]
/// behind the lock, so that releases around kernels hand the lock to parked waiters: the
/// throughput it holds and the hand-offs per request, from the server's own counters.
/// `None` when the run passed no hand-off.
fn contended(
    config: &ServerConfig,
    launch: &LaunchOptions,
    sc: &Scenario,
    opts: &CalibrateOptions,
) -> Result<Option<Contended>, CalibrateError> {
    let n = contenders(sc);
    let mut config = config.clone();
    config.threads = pool_threads(sc);
    let srv = ServerProcess::start(&config, launch)?;
    let result = contended_run(&srv, sc, opts, n);
    let _ = srv.stop(Duration::from_secs(10));
    let (used, wall_s, steal) = result?;
    if used.handoffs == 0 || used.completed == 0 || wall_s <= 0.0 {
        return Ok(None);
    }
    Ok(Some(Contended {
        throughput_rps: used.completed as f64 / wall_s,
        handoffs_per_request: used.handoffs as f64 / used.completed as f64,
        steal,
    }))
}

/// The hand-off cost (µs) at which the simulator, given everything else this calibration
/// measured, holds the contended run's throughput: one number for a mechanism (waking a
/// parked thread to take the lock, its caches cold), taken from a run of its own and used
/// for every point. Bisection; the simulated throughput falls as the cost grows.
fn fit_handoff_us(sc: &Scenario, cal: &Calibration, n: u32, want_rps: f64) -> Option<f64> {
    let base = bare(sc)
        .and_then(|b| {
            b.with(&[
                Override::new("worker.threads", pool_threads(sc)),
                Override::new("clients.kind", "closed"),
                Override::new("clients.users", n),
                Override::new("clients.think_ms", 0.0),
                Override::new("run.requests", 3000),
                Override::new("run.warmup_requests", 300),
                Override::new("run.replications", 3),
            ])
        })
        .ok()?;
    let rate = |h: f64| -> Option<f64> {
        let mut c = cal.clone();
        c.handoff_us = h;
        let mut s = base.clone();
        c.apply(&mut s, Path::new("calibration")).ok()?;
        crate::sim::simulate(&s).ok().map(|r| r.figures.throughput_rps)
    };
    let (mut lo, mut hi) = (0.0, 1000.0);
    if rate(lo)? <= want_rps {
        return Some(0.0);
    }
    if rate(hi)? >= want_rps {
        return Some(hi);
    }
    for _ in 0..14 {
        let mid = (lo + hi) / 2.0;
        if rate(mid)? > want_rps { lo = mid } else { hi = mid }
    }
    Some((lo + hi) / 2.0)
}

/// `n` clients sending at once: a warm-up, then half of `opts.requests` requests in all
/// (a throughput needs fewer than the single client's distributions); the server's
/// counters over the measured part, its wall time (s) and the host's steal meanwhile.
fn contended_run(
    srv: &ServerProcess,
    sc: &Scenario,
    opts: &CalibrateOptions,
    n: u32,
) -> Result<(Counters, f64, f64), CalibrateError> {
    let body = body(sc);
    let per_client = (opts.requests / 2).div_ceil(n).max(1);
    let warmup = opts.warmup.div_ceil(n).max(1);
    let barrier = Barrier::new(n as usize + 1);
    let addr = srv.addr();
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..n)
            .map(|_| {
                let (body, barrier) = (&body, &barrier);
                scope.spawn(move || -> Result<(), CalibrateError> {
                    let conn = Connection::open(addr, Duration::from_secs(30))
                        .map_err(|e| CalibrateError::Request { index: 0, message: e.to_string() });
                    let mut conn = match conn {
                        Ok(c) => c,
                        Err(e) => {
                            barrier.wait();
                            barrier.wait();
                            return Err(e);
                        }
                    };
                    let warm = (0..warmup).try_for_each(|i| send(&mut conn, body, i).map(drop));
                    barrier.wait();
                    barrier.wait();
                    warm?;
                    (0..per_client).try_for_each(|i| send(&mut conn, body, warmup + i).map(drop))
                })
            })
            .collect();
        barrier.wait();
        let before = counters(srv);
        let (t0, ticks) = (Instant::now(), CpuTicks::now());
        barrier.wait();
        let outcomes: Vec<_> = clients.into_iter().map(|c| c.join()).collect();
        let (wall_s, steal) = (t0.elapsed().as_secs_f64(), stolen_since(ticks));
        for o in outcomes {
            match o {
                Ok(r) => r?,
                Err(_) => return Err(CalibrateError::Options("a calibration client panicked".into())),
            }
        }
        Ok((counters(srv)?.since(&before?), wall_s, steal))
    })
}

/// Hand-offs timed per round of `switch_us`.
const SWITCH_PER_ROUND: u32 = 20_000;
/// Rounds of `switch_us`.
const SWITCH_ROUNDS: usize = 7;
/// The relative interquartile spread of the rounds of `switch_us` that counts as
/// agreement: a pass between two threads on one CPU repeats to a few percent (the 7 rounds
/// of one calibration 1–6% apart in six calibrations on a 2-vCPU VM, 2.90–3.66 µs from one
/// calibration to the next); past a quarter the rounds met other work on that CPU.
const SWITCH_SPREAD: f64 = 0.25;

/// Records in `cal` the CPU of one hand-off of the fair lock on a busy core (`switch_us`:
/// two threads on one CPU passing a turn back and forth through park and unpark, in
/// rounds; [`server::gil::handoff::switch_us`]). Measured before the hand-off is fitted,
/// which then fits only what the CPU leaves: the wake-up of an idle core. Returns the
/// method's note on it.
pub(super) fn switch(cal: &mut Calibration) -> String {
    let mut rounds = Vec::with_capacity(SWITCH_ROUNDS);
    for _ in 0..SWITCH_ROUNDS {
        match server::gil::handoff::switch_us(SWITCH_PER_ROUND) {
            Ok(us) => rounds.push(us),
            Err(e) => {
                return format!(
                    "no hand-off CPU on a busy core (switch_us 0): cannot pin two threads to one CPU: {e}"
                );
            }
        }
    }
    let Some(r) = crate::stats::Rounds::judge(&rounds, SWITCH_SPREAD) else {
        return "no hand-off CPU on a busy core (switch_us 0): no round gave a finite time".into();
    };
    cal.switch_us = r.median;
    if !r.stable {
        cal.unstable.push("switch_us".into());
    }
    let note = format!(
        "hand-off CPU on a busy core: {} rounds of {SWITCH_PER_ROUND} passes between two parked threads \
         on one CPU, median {:.2} µs, spread {:.0}%{}",
        r.rounds.len(),
        r.median,
        r.spread * 100.0,
        if r.stable { "" } else { " (UNSTABLE)" }
    );
    cal.switch_rounds = Some(r);
    note
}

/// Records the lock's hand-off cost in `cal`: fitted to the contended run, or, when that
/// run passed no hand-off or the fit failed, timed among four threads in process
/// ([`server::gil::handoff`]). Returns the method's note on it.
pub(super) fn handoff(sc: &Scenario, cal: &mut Calibration, run: Rounds, opts: &CalibrateOptions) -> String {
    let n = contenders(sc);
    let rounds = &run.kept;
    let fitted: Vec<f64> =
        rounds.iter().filter_map(|c| fit_handoff_us(sc, cal, n, c.throughput_rps)).collect();
    match crate::stats::Rounds::judge(&fitted, HANDOFF_SPREAD) {
        Some(r) => {
            cal.handoff_us = r.median;
            if !r.stable || run.stolen_only() {
                cal.unstable.push("handoff_us".into());
            }
            let rps: Vec<String> = rounds
                .iter()
                .map(|c| format!("{:.1} (host steal {:.1}%)", c.throughput_rps, c.steal * 100.0))
                .collect();
            let note = format!(
                "hand-off: the cost at which the simulator holds the req/s that {n} clients to a pool of {} \
                 threads behind the lock held on the server, in {} rounds ({} req/s; {:.0} hand-offs per \
                 request){}: median {:.1} µs, spread {:.0}%{}",
                pool_threads(sc),
                rounds.len(),
                rps.join(", "),
                rounds.iter().map(|c| c.handoffs_per_request).sum::<f64>() / rounds.len().max(1) as f64,
                match (run.set_aside, run.stolen_only()) {
                    (0, _) => String::new(),
                    (k, false) => format!(
                        ", {k} more set aside: the host stole over {:.0}% of the CPUs' time",
                        STEAL_LIMIT * 100.0
                    ),
                    (_, true) => format!(
                        ", every round with the host stealing over {:.0}% of the CPUs' time (UNSTABLE: calibrate again on a quieter host)",
                        STEAL_LIMIT * 100.0
                    ),
                },
                r.median,
                r.spread * 100.0,
                if r.stable { "" } else { " (UNSTABLE)" }
            );
            cal.handoff_rounds = Some(r);
            cal.host_steal_pct = rounds.iter().map(|c| c.steal * 100.0).fold(cal.host_steal_pct, f64::max);
            note
        }
        None => {
            cal.handoff_us = server::gil::handoff::measure(opts.handoffs.max(10));
            format!(
                "hand-off: {} lock hand-offs among four threads (the server runs passed none)",
                opts.handoffs
            )
        }
    }
}

/// The relative interquartile spread of the rounds' fitted hand-offs that counts as
/// agreement (see `wake`'s bound: a hand-off is a wake-up, and moves as much).
const HANDOFF_SPREAD: f64 = 0.25;
/// Contended rounds first run, and the most run when their throughputs disagree by more
/// than [`THROUGHPUT_SPREAD`].
const CONTENDED_ROUNDS: (usize, usize) = (3, 5);
/// The relative interquartile spread of the rounds' throughputs that counts as agreement.
const THROUGHPUT_SPREAD: f64 = 0.1;

/// The contended run in rounds (each with a fresh server), more of them while their
/// throughputs disagree: the rounds that passed hand-offs. A round during which the host
/// stole more than [`STEAL_LIMIT`] of the CPUs' ready time measured the host, not the lock
/// (a hand-off wakes a vCPU the host must give back first): it is set aside and another run
/// in its place, up to [`STOLEN_ROUNDS`] of them; `progress` is told of each. Only when every
/// round was stolen are those used, and the result is marked unstable.
pub(super) fn rounds(
    config: &ServerConfig,
    launch: &LaunchOptions,
    sc: &Scenario,
    opts: &CalibrateOptions,
    mut progress: impl FnMut(&str),
) -> Result<Rounds, CalibrateError> {
    let (mut done, mut stolen) = (Vec::new(), Vec::new());
    // Rounds run that were not set aside (those that passed no hand-off included): the
    // loop ends after CONTENDED_ROUNDS.1 of them, or STOLEN_ROUNDS set aside.
    let mut counted = 0;
    while counted < CONTENDED_ROUNDS.1 && stolen.len() < STOLEN_ROUNDS {
        match contended(config, launch, sc, opts)? {
            Some(c) if c.steal > STEAL_LIMIT => {
                progress(&format!(
                    "lock hand-offs: a round set aside, the host stole {:.1}% of the CPUs' time ({:.1} req/s); \
                     measuring another",
                    c.steal * 100.0,
                    c.throughput_rps
                ));
                stolen.push(c);
                continue;
            }
            Some(c) => done.push(c),
            None => {}
        }
        counted += 1;
        if counted >= CONTENDED_ROUNDS.0 {
            let rps: Vec<f64> = done.iter().map(|c| c.throughput_rps).collect();
            if crate::stats::Rounds::judge(&rps, THROUGHPUT_SPREAD).is_none_or(|r| r.stable) {
                break;
            }
        }
    }
    Ok(Rounds { set_aside: stolen.len(), kept: if done.is_empty() { stolen } else { done } })
}

/// The contended rounds kept, and how many the host's steal set aside.
pub(super) struct Rounds {
    kept: Vec<Contended>,
    set_aside: usize,
}

impl Rounds {
    /// Every round was stolen: the kept ones are those.
    fn stolen_only(&self) -> bool {
        !self.kept.is_empty() && self.kept.iter().all(|c| c.steal > STEAL_LIMIT)
    }
}

/// Rounds set aside for the host's steal before the stolen ones are used all the same.
const STOLEN_ROUNDS: usize = 6;

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(cores: u32, threads: u32) -> Scenario {
        let text = format!("[system]\ncores = {cores}\n[worker]\nthreads = {threads}\n");
        Scenario::parse(&text, Path::new("t.toml"), Path::new("."), &[]).expect("a scenario")
    }

    #[test]
    fn the_contended_run_uses_the_scenarios_own_pool_with_a_thread_per_client() {
        // The validation suite's pool: 8 threads on 2 cores, 3 clients.
        assert_eq!((contenders(&scenario(2, 8)), pool_threads(&scenario(2, 8))), (3, 8));
        // A pool smaller than the clients grows to one thread each: every client contends.
        assert_eq!((contenders(&scenario(2, 1)), pool_threads(&scenario(2, 1))), (3, 3));
        assert_eq!((contenders(&scenario(4, 40)), pool_threads(&scenario(4, 40))), (5, 40));
    }
}
