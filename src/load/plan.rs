//! What to run: a typed, validated [`LoadPlan`] built before any request is sent.

use super::pin;
use super::{BodyTemplate, LoadError, Target};
use crate::affinity::CpuList;
use crate::workload::Dist;
use hyper::Method;
use std::time::Duration;

/// Most connections, users or burst requests (a loopback port range holds ~28k).
pub const MAX_CONNECTIONS: u32 = 20_000;
/// Most requests one run may record (open-loop rate × time, or `--requests`).
pub const MAX_REQUESTS: u64 = 20_000_000;
/// Highest open-loop rate (requests/s): far beyond what one generator sends.
pub const MAX_RATE_RPS: f64 = 1_000_000.0;
/// Longest duration, warm-up, timeout or drain accepted (one week).
pub const MAX_SECONDS: u64 = 7 * 24 * 3600;
/// Most runtime threads.
pub const MAX_THREADS: usize = 256;

/// How requests are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// `users` concurrent users, each on its own keep-alive connection, each waiting for its
    /// reply, then thinking, before sending again.
    Closed {
        /// Concurrent users.
        users: u32,
        /// Think time between a reply and the next request (ms).
        think_ms: Dist,
    },
    /// Requests at times fixed in advance from an absolute start, whatever the replies.
    Open {
        /// Offered rate (requests/s).
        rate_rps: f64,
        /// Exponential gaps (a Poisson process) instead of equal gaps.
        poisson: bool,
    },
    /// `n` requests at t = 0 on `n` connections opened beforehand.
    Burst {
        /// Requests in the burst.
        n: u32,
    },
    /// Open loop at the given send times [ms from the start], e.g. a recorded trace.
    Trace {
        /// Send times (ms); sorted before use.
        at_ms: Vec<f64>,
    },
}

impl Mode {
    /// `closed`, `open`, `burst` or `trace`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Closed { .. } => "closed",
            Mode::Open { .. } => "open",
            Mode::Burst { .. } => "burst",
            Mode::Trace { .. } => "trace",
        }
    }

    /// One line for tables, e.g. `closed loop, 8 users, think 0 ms`.
    pub fn describe(&self) -> String {
        match self {
            Mode::Closed { users, think_ms } => {
                format!("closed loop, {users} users, think {} ms (mean)", think_ms.mean())
            }
            Mode::Open { rate_rps, poisson } => {
                let gaps = if *poisson { "Poisson" } else { "constant gaps" };
                format!("open loop, {rate_rps} req/s, {gaps}")
            }
            Mode::Burst { n } => format!("burst of {n} at t = 0"),
            Mode::Trace { at_ms } => format!("trace of {} send times", at_ms.len()),
        }
    }

    /// Whether send times are fixed in advance (open loop or trace).
    pub fn is_open(&self) -> bool {
        matches!(self, Mode::Open { .. } | Mode::Trace { .. })
    }
}

/// When the run stops sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Send for this long after the warm-up.
    Duration(Duration),
    /// Send exactly this many requests, warm-up included.
    Requests(u64),
}

/// A load run, checked by [`LoadPlan::validate`] before anything is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    /// Target, `http://HOST[:PORT][/PATH]`.
    pub url: String,
    /// HTTP method. By default, `POST`.
    pub method: Method,
    /// Body template, sent as `application/json`; `None` sends no body.
    /// By default, [`BodyTemplate::default`] (the servesim server's `POST /correct`).
    pub body: Option<BodyTemplate>,
    /// How requests are sent.
    pub mode: Mode,
    /// When sending stops.
    pub stop: Stop,
    /// Requests completing this early are left out of the statistics (but counted apart).
    /// With [`Stop::Duration`] the run sends for `warmup + duration`. By default, 0.
    pub warmup: Duration,
    /// Per-request limit, from the actual send to the last body byte; also bounds
    /// connecting. By default, 30 s.
    pub timeout: Duration,
    /// How long requests in flight at the end of a [`Stop::Duration`] run may take before
    /// they are cancelled (the hard stop). By default (`None`), `timeout`.
    pub drain: Option<Duration>,
    /// Most connections the open loop may hold; a request that finds none idle and this
    /// many open waits, and the wait counts in its latency. Closed users and bursts use one
    /// connection each. By default, 512.
    pub max_connections: u32,
    /// Keep every response body in the records. By default, off.
    pub capture_bodies: bool,
    /// Keep each response's `Server-Timing` header in its record. By default, false.
    pub capture_timing: bool,
    /// Seed of the Poisson gaps and think times. By default, 1.
    pub seed: u64,
    /// Worker threads of the runtime [`run_blocking`](super::run_blocking) builds.
    /// By default, 1 (the generator must not steal the server's CPU).
    pub threads: usize,
    /// CPUs the runtime's threads are pinned to (Linux), for `run_blocking`.
    /// By default, `None` (not pinned).
    pub cpus: Option<CpuList>,
}

impl LoadPlan {
    /// A plan with every other field at its default.
    pub fn new(url: impl Into<String>, mode: Mode, stop: Stop) -> Self {
        Self {
            url: url.into(),
            method: Method::POST,
            body: Some(BodyTemplate::default()),
            mode,
            stop,
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(30),
            drain: None,
            max_connections: 512,
            capture_bodies: false,
            capture_timing: false,
            seed: 1,
            threads: 1,
            cpus: None,
        }
    }

    /// The drain deadline after the send window.
    pub fn drain(&self) -> Duration {
        self.drain.unwrap_or(self.timeout)
    }

    /// Requests the run will send, when known in advance.
    pub fn expected_requests(&self) -> Option<u64> {
        match (&self.mode, self.stop) {
            (_, Stop::Requests(n)) => Some(n),
            (Mode::Burst { n }, _) => Some(u64::from(*n)),
            _ => None,
        }
    }

    /// Checks every field; the error names the flag and the fix.
    pub fn validate(&self) -> Result<(), LoadError> {
        Target::parse(&self.url)?;
        if let Some(body) = &self.body {
            body.validate()?;
        }
        self.validate_mode()?;
        self.validate_stop()?;
        self.validate_times()?;
        self.validate_runtime()
    }

    fn validate_mode(&self) -> Result<(), LoadError> {
        match &self.mode {
            Mode::Closed { users, think_ms } => {
                count_in_range("--closed", "users", *users)?;
                think_ms.validate().map_err(|e| LoadError::flag("--think-ms", format!("is invalid: {e}")))
            }
            Mode::Open { rate_rps, .. } => {
                let r = *rate_rps;
                if !(r.is_finite() && r > 0.0 && r <= MAX_RATE_RPS) {
                    return Err(LoadError::flag(
                        "--open",
                        format!("must be a rate in (0, {MAX_RATE_RPS}] requests/s, got {r:?}"),
                    ));
                }
                Ok(())
            }
            Mode::Burst { n } => count_in_range("--burst", "requests", *n),
            Mode::Trace { at_ms } => validate_trace(at_ms),
        }
    }

    fn validate_stop(&self) -> Result<(), LoadError> {
        match (self.stop, &self.mode) {
            (Stop::Requests(0), _) => Err(LoadError::flag("--requests", "must be at least 1, got 0")),
            (Stop::Requests(n), _) if n > MAX_REQUESTS => {
                Err(LoadError::flag("--requests", format!("must be at most {MAX_REQUESTS}, got {n}")))
            }
            (Stop::Requests(n), Mode::Burst { n: b }) if n != u64::from(*b) => Err(LoadError::flag(
                "--requests",
                format!("is {n} but a burst sends exactly --burst {b} requests; drop --requests"),
            )),
            // The last send time must exist: past it the schedule ends, and the run would
            // send fewer requests than asked without a word.
            (Stop::Requests(n), Mode::Open { rate_rps, .. })
                if (n - 1) as f64 / rate_rps > MAX_SECONDS as f64 =>
            {
                let secs = (n - 1) as f64 / rate_rps;
                Err(LoadError::flag(
                    "--requests",
                    format!(
                        "{n} at --open {rate_rps:?} req/s would take {secs:.3e} s to send, more than the \
                         {MAX_SECONDS} s (a week) a run may take; raise --open or send fewer requests"
                    ),
                ))
            }
            (Stop::Duration(d), _) if d.is_zero() => {
                Err(LoadError::flag("--duration", "must be more than 0 seconds"))
            }
            (Stop::Duration(d), Mode::Open { rate_rps, .. }) => {
                let n = rate_rps * (d + self.warmup).as_secs_f64();
                if n > MAX_REQUESTS as f64 {
                    return Err(LoadError::flag(
                        "--duration",
                        format!(
                            "with --open {rate_rps:?} would send {n:.0} requests, more than {MAX_REQUESTS}; shorten it"
                        ),
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn validate_times(&self) -> Result<(), LoadError> {
        let limit = Duration::from_secs(MAX_SECONDS);
        let mut times =
            vec![("--warmup", self.warmup), ("--timeout", self.timeout), ("--drain", self.drain())];
        if let Stop::Duration(d) = self.stop {
            times.push(("--duration", d));
        }
        for (flag, d) in times {
            if d > limit {
                return Err(LoadError::flag(
                    flag,
                    format!("must be at most {MAX_SECONDS} s, got {} s", d.as_secs()),
                ));
            }
        }
        if self.timeout.is_zero() {
            return Err(LoadError::flag("--timeout", "must be more than 0 seconds"));
        }
        Ok(())
    }

    fn validate_runtime(&self) -> Result<(), LoadError> {
        count_in_range("--max-connections", "connections", self.max_connections)?;
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return Err(LoadError::flag(
                "--threads",
                format!("must be between 1 and {MAX_THREADS}, got {}", self.threads),
            ));
        }
        match &self.cpus {
            Some(cpus) => pin::validate(cpus),
            None => Ok(()),
        }
    }
}

fn count_in_range(flag: &'static str, what: &str, n: u32) -> Result<(), LoadError> {
    if (1..=MAX_CONNECTIONS).contains(&n) {
        Ok(())
    } else {
        Err(LoadError::flag(flag, format!("must be between 1 and {MAX_CONNECTIONS} {what}, got {n}")))
    }
}

fn validate_trace(at_ms: &[f64]) -> Result<(), LoadError> {
    if at_ms.is_empty() {
        return Err(LoadError::flag("--trace", "has no send times; give at least one"));
    }
    if at_ms.len() as u64 > MAX_REQUESTS {
        return Err(LoadError::flag("--trace", format!("has more than {MAX_REQUESTS} send times")));
    }
    let max_ms = (MAX_SECONDS * 1000) as f64;
    match at_ms.iter().find(|t| !(t.is_finite() && **t >= 0.0 && **t <= max_ms)) {
        Some(t) => {
            Err(LoadError::flag("--trace", format!("send times must be in [0, {max_ms}] ms, got {t}")))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:8000/correct";

    fn closed(users: u32) -> LoadPlan {
        LoadPlan::new(URL, Mode::Closed { users, think_ms: Dist::Const(0.0) }, Stop::Requests(10))
    }

    #[test]
    fn defaults_are_valid() {
        closed(4).validate().unwrap();
        let open = Mode::Open { rate_rps: 50.0, poisson: true };
        LoadPlan::new(URL, open, Stop::Duration(Duration::from_secs(5))).validate().unwrap();
        LoadPlan::new(URL, Mode::Burst { n: 8 }, Stop::Requests(8)).validate().unwrap();
    }

    #[test]
    fn bad_plans_name_their_flag() {
        let secs = |s| Stop::Duration(Duration::from_secs(s));
        let mut cases: Vec<(LoadPlan, &str)> = Vec::new();
        cases.push((closed(0), "--closed"));
        let mut p = closed(1);
        p.mode = Mode::Closed { users: 1, think_ms: Dist::Const(-1.0) };
        cases.push((p, "--think-ms"));
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e6] {
            cases
                .push((LoadPlan::new(URL, Mode::Open { rate_rps: rate, poisson: false }, secs(1)), "--open"));
        }
        cases.push((LoadPlan::new(URL, Mode::Burst { n: 0 }, Stop::Requests(1)), "--burst"));
        cases.push((LoadPlan::new(URL, Mode::Burst { n: 4 }, Stop::Requests(5)), "--requests"));
        cases.push((LoadPlan::new(URL, Mode::Trace { at_ms: vec![] }, secs(1)), "--trace"));
        cases.push((LoadPlan::new(URL, Mode::Trace { at_ms: vec![1.0, f64::NAN] }, secs(1)), "--trace"));
        let mut p = closed(1);
        p.stop = Stop::Requests(0);
        cases.push((p, "--requests"));
        let mut p = closed(1);
        p.stop = Stop::Duration(Duration::ZERO);
        cases.push((p, "--duration"));
        let mut p = closed(1);
        p.stop = Stop::Duration(Duration::from_secs(u64::MAX / 4));
        cases.push((p, "--duration"));
        let open = Mode::Open { rate_rps: 1e6, poisson: false };
        cases.push((LoadPlan::new(URL, open, secs(3600)), "--duration"));
        // The second send would come after 1e300 s: it was silently never sent.
        let open = Mode::Open { rate_rps: 1e-300, poisson: false };
        cases.push((LoadPlan::new(URL, open, Stop::Requests(2)), "--requests 2 at --open 1e-300 req/s"));
        let mut p = closed(1);
        p.timeout = Duration::ZERO;
        cases.push((p, "--timeout"));
        let mut p = closed(1);
        p.max_connections = 0;
        cases.push((p, "--max-connections"));
        let mut p = closed(1);
        p.threads = 0;
        cases.push((p, "--threads"));
        let mut p = closed(1);
        p.cpus = Some(CpuList::default());
        cases.push((p, "--cpus"));
        let mut p = closed(1);
        p.url = "https://127.0.0.1/".into();
        cases.push((p, "--url"));
        let mut p = closed(1);
        p.body = Some(BodyTemplate::new("{not json"));
        cases.push((p, "--body"));
        for (plan, flag) in cases {
            let err = plan.validate().expect_err(flag).to_string();
            assert!(err.starts_with(flag), "{flag}: {err}");
        }
    }

    #[test]
    fn expected_requests() {
        assert_eq!(closed(2).expected_requests(), Some(10));
        let burst = LoadPlan::new(URL, Mode::Burst { n: 7 }, Stop::Duration(Duration::from_secs(1)));
        assert_eq!(burst.expected_requests(), Some(7));
        let open = LoadPlan::new(
            URL,
            Mode::Open { rate_rps: 1.0, poisson: false },
            Stop::Duration(Duration::from_secs(1)),
        );
        assert_eq!(open.expected_requests(), None);
    }
}
