//! Range checks: every rule names the field, what it must be, and the value given.
//!
//! Besides the rules of meaning (≥ 1 thread, a rate > 0), every value is bounded in
//! magnitude, so that no valid scenario can overflow the simulator's u64 nanosecond clock
//! (1.8e19 ns ≈ 584 years), stall it with zero-length steps, or ask for memory no machine
//! has. Each bound is documented on its field and sits far beyond any real service.

use super::{Balancer, BatchingMode, ClientKind, Scenario, ScenarioError, Scheduler};
use crate::workload::Dist;

/// Largest count accepted for users, bursts, workers, threads and similar sizes; far beyond
/// any machine, small enough that memory stays bounded.
const MAX_COUNT: u64 = 1_000_000;

/// Largest number of threads simulated in all: every worker's event loop, pool threads and
/// batch scheduler. A million threads take about 50 MB of simulator state.
const MAX_THREADS: u64 = 1_000_000;
/// Most cores a time-sliced run may have.
const MAX_SLICE_CORES: u32 = 1024;

/// Largest duration of a scalar time field (ms): the bound on every distribution's mean.
const MAX_MS: f64 = Dist::MAX_VALUE;

/// Shortest GIL switch interval (ms): CPython keeps the interval in whole microseconds and
/// waits at least 1 µs (`take_gil` in `Python/ceval_gil.c`).
const MIN_SWITCH_MS: f64 = 1e-3;

/// Highest open-loop rate (requests/s): a mean gap of 1000 ns, so rounding gaps to the
/// 1 ns clock moves the rate by < 0.1%; beyond any model server.
pub(crate) const MAX_RATE_RPS: f64 = 1e6;

/// Lowest open-loop rate (requests/s): a mean gap of 1e9 ms, the bound on every duration.
pub(crate) const MIN_RATE_RPS: f64 = 1e-6;

/// Most lock release points per token: a 100-layer model releasing the lock around a
/// hundred kernels per layer. Each slice is a simulated step, so this bounds the steps per
/// token.
const MAX_RELEASE_POINTS: u64 = 10_000;

/// Largest lock hand-off cost (µs): 1 s, a million times a context switch.
const MAX_HANDOFF_US: f64 = 1e6;

/// Most tokens per request: the simulator draws at most this many (`workload.new_tokens`).
const MAX_TOKENS: f64 = 1e6;

/// Longest simulated run (s): 1e9 s (31.7 years) is 1e18 ns, 18× below where the u64
/// nanosecond clock wraps, with room for any event scheduled past the end.
const MAX_SIM_S: f64 = 1e9;

/// Most requests measured plus warmed up per replication: a client's request counter
/// stays far below 2³²; a billion requests already take minutes to simulate.
const MAX_REQUESTS: u64 = 1_000_000_000;

/// Most events per replication: 1e12 events take hours to simulate.
const MAX_EVENTS: u64 = 1_000_000_000_000;

/// Largest memory of one process or one sequence (MB): 1e9 MB is a petabyte.
const MAX_MEMORY_MB: f64 = 1e9;

/// A number as an error shows it: plain when short, in exponent form when huge or tiny
/// (`1e300`, not its 301 digits).
pub(crate) fn show(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-3..1e6).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

fn at_least<T: PartialOrd + std::fmt::Display>(field: &str, v: T, min: T) -> Result<(), ScenarioError> {
    if v >= min { Ok(()) } else { Err(ScenarioError::invalid(field, format!("must be ≥ {min}, got {v}"))) }
}

fn at_most<T: PartialOrd + std::fmt::Display>(field: &str, v: T, max: T) -> Result<(), ScenarioError> {
    if v <= max { Ok(()) } else { Err(ScenarioError::invalid(field, format!("must be ≤ {max}, got {v}"))) }
}

fn count(field: &str, v: u64, min: u64) -> Result<(), ScenarioError> {
    at_least(field, v, min)?;
    at_most(field, v, MAX_COUNT)
}

fn positive(field: &str, v: f64) -> Result<(), ScenarioError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(ScenarioError::invalid(field, format!("must be a finite number > 0, got {}", show(v))))
    }
}

/// A number in `[min, max]` (finite), written with the bounds as given.
fn within(field: &str, v: f64, min: f64, max: f64) -> Result<(), ScenarioError> {
    if v.is_finite() && (min..=max).contains(&v) {
        Ok(())
    } else {
        let (lo, hi, v) = (show(min), show(max), show(v));
        Err(ScenarioError::invalid(field, format!("must be a finite number in [{lo}, {hi}], got {v}")))
    }
}

/// The dotted paths of the scenario's distributions, in [`Scenario::dists`] order.
const DIST_FIELDS: [&str; 16] = [
    "clients.think_ms",
    "workload.new_tokens",
    "cost.loop_in_ms",
    "cost.loop_out_ms",
    "cost.loop_in_free_ms",
    "cost.loop_out_free_ms",
    "cost.request_locked_ms",
    "cost.request_free_ms",
    "cost.token_locked_ms",
    "cost.token_free_ms",
    "cost.rtt_ms",
    "cost.wake_us",
    "batching.step_locked_ms",
    "batching.step_free_ms",
    "batching.seq_locked_ms",
    "batching.seq_free_ms",
];

/// The optional distributions, listed when they are given.
const OPTIONAL_DIST: &str = "cost.wake_busy_us";

/// The scenario's distributions, borrowed as `$r` (`&` or `&mut`, the option's `$opt`
/// `as_ref` or `as_mut`), in [`DIST_FIELDS`] order, then the optional one if given.
macro_rules! dists {
    ($s:expr, $opt:ident, $($r:tt)+) => {{
        let (c, b) = ($($r)+ $s.cost, $($r)+ $s.batching);
        let d = [
            $($r)+ $s.clients.think_ms,
            $($r)+ $s.workload.new_tokens,
            $($r)+ c.loop_in_ms,
            $($r)+ c.loop_out_ms,
            $($r)+ c.loop_in_free_ms,
            $($r)+ c.loop_out_free_ms,
            $($r)+ c.request_locked_ms,
            $($r)+ c.request_free_ms,
            $($r)+ c.token_locked_ms,
            $($r)+ c.token_free_ms,
            $($r)+ c.rtt_ms,
            $($r)+ c.wake_us,
            $($r)+ b.step_locked_ms,
            $($r)+ b.step_free_ms,
            $($r)+ b.seq_locked_ms,
            $($r)+ b.seq_free_ms,
        ];
        let mut names = DIST_FIELDS.into_iter();
        let opt = c.wake_busy_us.$opt().map(|d| (OPTIONAL_DIST, d));
        d.map(|d| (names.next().unwrap_or_default(), d)).into_iter().chain(opt).collect()
    }};
}

impl Scenario {
    /// Every distribution of the scenario with its dotted path.
    pub fn dists_mut(&mut self) -> Vec<(&'static str, &mut Dist)> {
        dists!(self, as_mut, &mut)
    }

    /// Every distribution of the scenario with its dotted path.
    pub fn dists(&self) -> Vec<(&'static str, &Dist)> {
        dists!(self, as_ref, &)
    }

    /// Checks every value; the first violation is returned with its path and the fix.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.validate_system()?;
        self.validate_clients()?;
        self.validate_dists()?;
        self.validate_cost()?;
        self.validate_batching()?;
        self.validate_run()?;
        self.target.as_ref().map_or(Ok(()), |t| t.validate(self))
    }

    fn validate_system(&self) -> Result<(), ScenarioError> {
        let (s, w) = (&self.system, &self.worker);
        count("system.cores", s.cores.into(), 1)?;
        count("system.workers", s.workers.into(), 1)?;
        within("system.worker_memory_mb", s.worker_memory_mb, 0.0, MAX_MEMORY_MB)?;
        within("system.seq_memory_mb", s.seq_memory_mb, 0.0, MAX_MEMORY_MB)?;
        within("system.slice_ms", s.slice_ms, 0.001, 1000.0)?;
        if s.scheduler == Scheduler::Slice && s.cores > MAX_SLICE_CORES {
            return Err(ScenarioError::invalid(
                "system.cores",
                format!(
                    "must be ≤ {MAX_SLICE_CORES} with system.scheduler = \"slice\" (each event looks \
                     at every core), got {}; use scheduler = \"ps\" for larger machines",
                    s.cores
                ),
            ));
        }
        self.validate_split()?;
        count("worker.threads", w.threads.into(), 1)?;
        count("worker.queue_limit", w.queue_limit.into(), 1)?;
        positive("worker.switch_interval_ms", w.switch_interval_ms)?;
        within("worker.switch_interval_ms", w.switch_interval_ms, MIN_SWITCH_MS, MAX_MS)?;
        let workers = u64::from(s.workers);
        // Each worker runs an event loop (and a batch scheduler when batching) besides its pool.
        let own = 1 + u64::from(self.batching.mode != BatchingMode::None);
        let threads = workers * (u64::from(w.threads) + own);
        if threads > MAX_THREADS {
            let what = if own == 1 { "an event loop" } else { "an event loop and a batch scheduler" };
            return Err(ScenarioError::invalid(
                "system.workers",
                format!(
                    "× (worker.threads + {own}) must be ≤ {MAX_THREADS} simulated threads, got \
                     {} × ({} + {own}) = {threads} (each worker runs {what} besides its pool); lower \
                     system.workers or worker.threads",
                    s.workers, w.threads
                ),
            ));
        }
        Ok(())
    }

    fn validate_split(&self) -> Result<(), ScenarioError> {
        let (s, k) = (&self.system, &self.clients);
        if s.split.is_empty() {
            return Ok(());
        }
        let bad = |m: String| Err(ScenarioError::invalid("system.split", m));
        if s.balancer != Balancer::Hash || k.kind != ClientKind::Closed {
            return bad("applies to balancer = \"hash\" with closed-loop clients (users keeping their \
                 connections); remove it, or set system.balancer = \"hash\" and clients.kind = \"closed\""
                .into());
        }
        if s.split.len() != s.workers as usize {
            return bad(format!(
                "has {} entries for {} workers; give one count of users per worker",
                s.split.len(),
                s.workers
            ));
        }
        let sum: u64 = s.split.iter().map(|&n| u64::from(n)).sum();
        if sum != u64::from(k.users) {
            return bad(format!(
                "adds up to {sum} users, but clients.users is {}; the counts must add up to it",
                k.users
            ));
        }
        Ok(())
    }

    fn validate_clients(&self) -> Result<(), ScenarioError> {
        let k = &self.clients;
        within("clients.cpu_ms", k.cpu_ms, 0.0, 1e3)?;
        match k.kind {
            ClientKind::Closed => {
                count("clients.users", k.users.into(), 1)?;
                if k.users > self.worker.queue_limit {
                    return Err(ScenarioError::invalid(
                        "clients.users",
                        format!(
                            "({}) exceeds worker.queue_limit ({}): one worker could be sent more \
                             requests than it admits; raise worker.queue_limit",
                            k.users, self.worker.queue_limit
                        ),
                    ));
                }
                Ok(())
            }
            ClientKind::Open => {
                positive("clients.rate_rps", k.rate_rps)?;
                within("clients.rate_rps", k.rate_rps, MIN_RATE_RPS, MAX_RATE_RPS)
            }
            ClientKind::Burst => count("clients.burst", k.burst.into(), 1),
            // Arrival times given in memory (a derived scenario) need no file.
            ClientKind::Trace if k.trace.is_none() && k.trace_ms.is_empty() => Err(ScenarioError::invalid(
                "clients.trace",
                "is required with kind = \"trace\": a CSV file of arrival times [ms]",
            )),
            ClientKind::Trace => self.validate_trace(),
        }
    }

    /// The arrival times read from `clients.trace` (the loader checked they do not decrease)
    /// or given in memory.
    fn validate_trace(&self) -> Result<(), ScenarioError> {
        let times = &self.clients.trace_ms;
        if let Some(t) = times.iter().find(|t| !(t.is_finite() && (0.0..=MAX_MS).contains(*t))) {
            return Err(ScenarioError::invalid(
                "clients.trace",
                format!(": arrival times must be finite, ≥ 0 and ≤ {} ms, got {}", show(MAX_MS), show(*t)),
            ));
        }
        if times.len() as u64 > MAX_REQUESTS {
            return Err(ScenarioError::invalid(
                "clients.trace",
                format!(": must hold ≤ {MAX_REQUESTS} arrivals, got {}", times.len()),
            ));
        }
        Ok(())
    }

    /// Every distribution again (the loader may have added calibrated parts), and the
    /// tighter bound on tokens.
    fn validate_dists(&self) -> Result<(), ScenarioError> {
        for (field, d) in self.dists() {
            d.validate()
                .map_err(|e| ScenarioError::Schema { field: field.into(), message: e.to_string() })?;
        }
        let tokens = &self.workload.new_tokens;
        let most = magnitude(tokens);
        if most > MAX_TOKENS {
            let got = match tokens {
                Dist::Const(_) => show(most),
                d => format!("{} ({}: its largest value, or mean)", show(most), d.kind()),
            };
            return Err(ScenarioError::invalid(
                "workload.new_tokens",
                format!("must be ≤ {} tokens, the most a request may generate, got {got}", show(MAX_TOKENS)),
            ));
        }
        count("workload.prompt_chars", self.workload.prompt_chars.into(), 0)
    }

    fn validate_cost(&self) -> Result<(), ScenarioError> {
        let c = &self.cost;
        at_least("cost.release_points", u64::from(c.release_points), 1)?;
        at_most("cost.release_points", u64::from(c.release_points), MAX_RELEASE_POINTS)?;
        within("cost.handoff_us", c.handoff_us, 0.0, MAX_HANDOFF_US)?;
        within("cost.switch_us", c.switch_us, 0.0, MAX_HANDOFF_US)?;
        within("cost.vain_wake_us", c.vain_wake_us, 0.0, MAX_HANDOFF_US)?;
        within("cost.signal_us", c.signal_us, 0.0, MAX_HANDOFF_US)?;
        within("cost.mutex_wake_us", c.mutex_wake_us, 0.0, MAX_HANDOFF_US)?;
        within("cost.cold_start_us", c.cold_start_us, 0.0, MAX_HANDOFF_US)?;
        within("cost.cold_start_ms", c.cold_start_ms, 0.001, 1e6)?;
        let Some(cal) = &c.calibrated else { return Ok(()) };
        let field = "cost.calibration";
        let mut sizes: Vec<u32> = Vec::new();
        for st in &cal.batch_steps {
            at_least(&format!("{field}: batch_steps.batch"), st.batch, 1)?;
            if sizes.contains(&st.batch) {
                return Err(ScenarioError::invalid(
                    field,
                    format!(": batch size {} is measured twice in batch_steps; calibrate again", st.batch),
                ));
            }
            sizes.push(st.batch);
            let ok = |x: &f64| x.is_finite() && (0.0..=MAX_MS).contains(x);
            if let Some(x) = st.locked_ms.iter().chain(&st.free_ms).find(|x| !ok(x)) {
                return Err(ScenarioError::invalid(
                    field,
                    format!(
                        ": batch_steps at batch {} has a sample {}; samples must be finite, ≥ 0 and \
                         ≤ {} ms",
                        st.batch,
                        show(*x),
                        show(MAX_MS)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_batching(&self) -> Result<(), ScenarioError> {
        let b = &self.batching;
        count("batching.max_batch", b.max_batch.into(), 1)?;
        within("batching.max_wait_ms", b.max_wait_ms, 0.0, MAX_MS)?;
        // A step of a full batch must stay within the bound on any duration.
        let full = f64::from(b.max_batch);
        for (field, step, seq) in [
            ("batching.seq_locked_ms", &b.step_locked_ms, &b.seq_locked_ms),
            ("batching.seq_free_ms", &b.step_free_ms, &b.seq_free_ms),
        ] {
            let mean = step.mean() + full * seq.mean();
            if mean > MAX_MS {
                return Err(ScenarioError::invalid(
                    field,
                    format!(
                        "is too large: a step of batching.max_batch = {} sequences would cost {} ms \
                         on average, more than {} ms; lower it or batching.max_batch",
                        b.max_batch,
                        show(mean),
                        show(MAX_MS)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_run(&self) -> Result<(), ScenarioError> {
        let r = &self.run;
        at_least("run.requests", r.requests, 1)?;
        at_most("run.requests", r.requests, MAX_REQUESTS)?;
        at_most("run.warmup_requests", r.warmup_requests, MAX_REQUESTS)?;
        let total = r.requests + r.warmup_requests;
        if total > MAX_REQUESTS {
            return Err(ScenarioError::invalid(
                "run.requests",
                format!(
                    "+ run.warmup_requests must be ≤ {MAX_REQUESTS}, got {} + {} = {total}",
                    r.requests, r.warmup_requests
                ),
            ));
        }
        count("run.replications", r.replications.into(), 1)?;
        positive("run.max_sim_s", r.max_sim_s)?;
        if r.max_sim_s > MAX_SIM_S {
            let (max, v) = (show(MAX_SIM_S), show(r.max_sim_s));
            return Err(ScenarioError::invalid("run.max_sim_s", format!("must be ≤ {max}, got {v}")));
        }
        at_least("run.max_events", r.max_events, 1)?;
        at_most("run.max_events", r.max_events, MAX_EVENTS)?;
        Ok(())
    }
}

/// The largest value of a bounded distribution, the mean of an unbounded one; summed over
/// the parts of a sum.
fn magnitude(d: &Dist) -> f64 {
    match d {
        Dist::Const(v) => *v,
        Dist::Uniform { max, .. } => *max,
        Dist::Empirical { samples, .. } => samples.iter().copied().fold(0.0, f64::max),
        Dist::Sum(parts) => parts.iter().map(magnitude).sum(),
        Dist::Exponential { .. } | Dist::LogNormal { .. } | Dist::Gamma { .. } => d.mean(),
    }
}

/// The range of an integer field, for errors about values its type cannot hold.
pub(crate) fn integer_range(field: &str) -> Option<(u64, u64)> {
    Some(match field {
        "system.cores" | "system.workers" | "worker.threads" | "worker.queue_limit" | "clients.users"
        | "clients.burst" | "batching.max_batch" | "run.replications" => (1, MAX_COUNT),
        "workload.prompt_chars" => (0, MAX_COUNT),
        "cost.release_points" => (1, MAX_RELEASE_POINTS),
        "run.requests" => (1, MAX_REQUESTS),
        "run.warmup_requests" => (0, MAX_REQUESTS),
        "run.max_events" => (1, MAX_EVENTS),
        // TOML integers are 64-bit signed.
        "run.seed" => (0, i64::MAX as u64),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Override;
    use std::path::Path;

    fn load(sets: &[String]) -> Result<Scenario, ScenarioError> {
        let o: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
        Scenario::parse("", Path::new("t.toml"), Path::new("."), &o)
    }

    /// The ranges reported for values an integer type cannot hold are the ones validation
    /// enforces: one past either end is refused with the same bound.
    #[test]
    fn integer_ranges_match_validation() {
        for field in [
            "system.cores",
            "system.workers",
            "worker.threads",
            "worker.queue_limit",
            "clients.users",
            "clients.burst",
            "batching.max_batch",
            "run.replications",
            "workload.prompt_chars",
            "cost.release_points",
            "run.requests",
            "run.warmup_requests",
            "run.max_events",
            "run.seed",
        ] {
            let (lo, hi) = integer_range(field).unwrap();
            let mut base = vec!["worker.queue_limit=1000000".to_string()];
            if field == "clients.burst" {
                base.push("clients.kind=\"burst\"".into());
            }
            if field == "run.warmup_requests" {
                base.push("run.requests=1".into());
            }
            let refused = |value: String, want: String| {
                let mut sets = base.clone();
                sets.push(format!("{field}={value}"));
                let e = load(&sets).expect_err(&value).to_string();
                assert!(e.contains(&format!("{field} {want}")), "{field}={value}: {e}");
            };
            if hi < i64::MAX as u64 {
                refused((hi + 1).to_string(), format!("must be ≤ {hi}, got {}", hi + 1));
            }
            refused("99999999999999999999".into(), format!("must be ≤ {hi}"));
            refused((i128::from(lo) - 1).to_string(), format!("must be ≥ {lo}"));
            refused("2.5".into(), format!("must be a whole number in [{lo}, {hi}]"));
        }
    }

    #[test]
    fn numbers_show_short() {
        for (v, want) in [(0.0, "0"), (1e300, "1e300"), (1e-300, "1e-300"), (2.5, "2.5"), (1e9, "1e9")] {
            assert_eq!(show(v), want);
        }
        assert_eq!(
            (show(f64::NAN), show(f64::INFINITY), show(86_400.0)),
            ("NaN".into(), "inf".into(), "86400".into())
        );
    }

    #[test]
    fn dists_and_dists_mut_list_the_same_fields() {
        let mut sc = Scenario::defaults();
        let names: Vec<&str> = sc.dists().iter().map(|d| d.0).collect();
        assert_eq!(names, DIST_FIELDS);
        let names_mut: Vec<&str> = sc.dists_mut().iter().map(|d| d.0).collect();
        assert_eq!(names_mut, DIST_FIELDS);
        sc.cost.wake_busy_us = Some(Dist::Const(5.0));
        assert_eq!(sc.dists().last().map(|d| d.0), Some(OPTIONAL_DIST));
        assert_eq!(sc.dists_mut().last().map(|d| d.0), Some(OPTIONAL_DIST));
    }
}
