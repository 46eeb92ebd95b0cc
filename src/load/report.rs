//! What a run measured: statistics after the warm-up, error counts by kind, and the
//! open-loop send accuracy — computed from the records, printed as JSON or a table.

use super::{ErrorKind, LoadPlan, Mode, RequestRecord, Stop};
use crate::stats::{LatencyHistogram, LatencySummary};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A send later than this after its intended time is a late send (µs). The open loop's
/// pacing thread sleeps in the OS until each send time, which overshoots by tens of
/// microseconds, and a loopback connect takes about as long; a send 1 ms late was held
/// back by something else — no free connection, or a load generator short of CPU.
pub const LATE_SEND_US: u64 = 1_000;

/// The measurement. Serialized, it is the `servesim load --json` object (the records are
/// left out; [`write_csv`](super::write_csv) writes them).
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Always `"load"`.
    pub backend: String,
    /// `closed`, `open`, `burst` or `trace`.
    pub mode: String,
    /// The target.
    pub url: String,
    /// 2xx responses completed in the measured window per second of it (requests/s).
    pub throughput_rps: f64,
    /// Latency of 2xx responses, from the intended send time (ms).
    pub latency_ms: LatencySummary,
    /// Service time of 2xx responses, from the actual send (ms).
    pub service_ms: LatencySummary,
    /// 2xx responses completed after the warm-up (including while draining).
    pub completed: u64,
    /// Failed requests ended after the warm-up, by kind (every kind listed).
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Requests recorded, warm-up included.
    pub requests: u64,
    /// 2xx responses completed during the warm-up (not in the statistics).
    pub warmup_completed: u64,
    /// Failed requests ended during the warm-up (not in `errors`).
    pub warmup_errors: u64,
    /// The measured window (s): the duration, or from the warm-up's end to the last outcome.
    pub duration_s: f64,
    /// The warm-up (s).
    pub warmup_s: f64,
    /// Offered rate in the open loop (requests/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rps: Option<f64>,
    /// Rate at which requests actually went out after the warm-up (open loop, trace)
    /// (requests/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achieved_send_rps: Option<f64>,
    /// Sends later than [`LATE_SEND_US`] after their intended time, after the warm-up
    /// (open loop, trace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_sends: Option<u64>,
    /// Most requests in flight at once, seen from the client.
    pub max_in_flight: u64,
    /// Connections opened.
    pub connections: u64,
    /// Wall time of the whole run, drain included (s).
    pub wall_s: f64,
    /// Closed loop: how the users fell on the server's workers, by the
    /// [`PID_HEADER`](super::PID_HEADER) of their responses (all `unknown` when the server
    /// does not send it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users_by_worker: Option<super::UserSplit>,
    /// One record per request, in index order.
    #[serde(skip)]
    pub records: Vec<RequestRecord>,
}

/// What the report needs besides the plan and the records.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunInfo {
    /// Most requests in flight at once.
    pub max_in_flight: u64,
    /// Connections opened.
    pub connections: u64,
    /// Wall time of the run (s).
    pub wall_s: f64,
}

impl LoadReport {
    /// The report of `plan` from its records (sorted here by index).
    pub fn build(plan: &LoadPlan, mut records: Vec<RequestRecord>, info: RunInfo) -> Self {
        records.sort_by_key(|r| r.index);
        let warmup_us = micros(plan.warmup);
        let (warm, measured): (Vec<&RequestRecord>, Vec<&RequestRecord>) =
            records.iter().partition(|r| r.done_us < warmup_us);
        let (latency, service) = histograms(&measured);
        let window_us = window_us(plan, &records, warmup_us);
        let in_window = |r: &&&RequestRecord| r.is_ok() && r.done_us <= warmup_us + window_us;
        let open = plan.mode.is_open();
        LoadReport {
            backend: "load".into(),
            mode: plan.mode.name().into(),
            url: plan.url.clone(),
            throughput_rps: per_s(measured.iter().filter(in_window).count() as u64, window_us),
            latency_ms: latency.summary(),
            service_ms: service.summary(),
            completed: latency.count(),
            errors: error_counts(&measured),
            requests: records.len() as u64,
            warmup_completed: warm.iter().filter(|r| r.is_ok()).count() as u64,
            warmup_errors: warm.iter().filter(|r| !r.is_ok()).count() as u64,
            duration_s: window_us as f64 / 1e6,
            warmup_s: plan.warmup.as_secs_f64(),
            target_rps: match plan.mode {
                Mode::Open { rate_rps, .. } => Some(rate_rps),
                _ => None,
            },
            achieved_send_rps: open.then(|| send_rate(plan, &measured, warmup_us)),
            late_sends: open.then(|| {
                measured.iter().filter(|r| r.send_lag_us().is_some_and(|l| l > LATE_SEND_US)).count() as u64
            }),
            max_in_flight: info.max_in_flight,
            connections: info.connections,
            wall_s: info.wall_s,
            users_by_worker: None,
            records,
        }
    }

    /// Why the run measured nothing, when no request got a 2xx response (warm-up included):
    /// the failures by kind and what the most common kind usually means. `None` when any
    /// request succeeded.
    pub fn nothing_succeeded(&self, timeout: std::time::Duration) -> Option<String> {
        if self.completed + self.warmup_completed > 0 || self.records.is_empty() {
            return None;
        }
        let mut by_kind: BTreeMap<ErrorKind, u64> = BTreeMap::new();
        for kind in self.records.iter().filter_map(|r| r.error) {
            *by_kind.entry(kind).or_default() += 1;
        }
        let counts: Vec<String> = by_kind.iter().map(|(k, n)| format!("{} {n}", k.name())).collect();
        let most = by_kind.iter().max_by_key(|(_, n)| **n).map(|(k, _)| *k)?;
        let hint = match most {
            ErrorKind::Connect => "nothing accepted a connection there: is the service running, and \
                 listening on that host and port?"
                .to_string(),
            ErrorKind::Timeout => format!(
                "the service did not answer within --timeout {} s: give it longer, or check that \
                 it is not stuck",
                timeout.as_secs_f64()
            ),
            ErrorKind::Status4xx => "the service refused the requests: check --url's path, --method \
                 and --body"
                .to_string(),
            ErrorKind::Status5xx => "the service failed the requests: see its log".to_string(),
            ErrorKind::StatusOther => "the service answered 1xx or 3xx: point --url at the final \
                 address (redirects are not followed)"
                .to_string(),
            ErrorKind::Io | ErrorKind::Protocol => {
                "connections broke or the replies were not HTTP/1.1: is --url an HTTP (not HTTPS) \
                 endpoint?"
                    .to_string()
            }
            ErrorKind::Cancelled => "the run ended before any reply: give it longer (--duration, \
                 --drain)"
                .to_string(),
        };
        Some(format!(
            "no request to {} succeeded: {} failed ({}); {hint}",
            self.url,
            self.requests,
            counts.join(", ")
        ))
    }

    /// A readable table.
    pub fn table(&self, plan: &LoadPlan) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{} — measured, {}", self.url, plan.mode.describe());
        let _ = writeln!(
            out,
            "  {} requests, {} completed after a {:.1} s warm-up ({} completed and {} failed during it)\n",
            self.requests, self.completed, self.warmup_s, self.warmup_completed, self.warmup_errors
        );
        let mut row = |name: &str, v: String, unit: &str| {
            let _ = writeln!(out, "  {name:<22} {v:>12}  {unit}");
        };
        row("throughput", format!("{:.3}", self.throughput_rps), "req/s");
        row("window", format!("{:.3}", self.duration_s), "s");
        for (what, s) in [("latency", &self.latency_ms), ("service", &self.service_ms)] {
            for (q, v) in [("mean", s.mean), ("p50", s.p50), ("p95", s.p95), ("p99", s.p99), ("max", s.max)] {
                // With no 2xx response measured there is no latency to show, not a zero one.
                let v = if self.completed == 0 { "—".to_string() } else { format!("{v:.3}") };
                row(&format!("{what} {q}"), v, "ms");
            }
        }
        if let Some(t) = self.target_rps {
            row("target rate", format!("{t:.3}"), "req/s");
        }
        if let Some(a) = self.achieved_send_rps {
            row("achieved send rate", format!("{a:.3}"), "req/s");
        }
        if let Some(l) = self.late_sends {
            row("late sends", l.to_string(), &format!("(> {} ms late)", LATE_SEND_US / 1000));
        }
        row("max in flight", self.max_in_flight.to_string(), "requests");
        row("connections opened", self.connections.to_string(), "");
        if let Some(split) = self.users_by_worker.as_ref().filter(|s| !s.users.is_empty()) {
            row("users per worker", split.label(), "(pid: users, x-worker-pid)");
        }
        for (kind, n) in self.errors.iter().filter(|(_, n)| **n > 0) {
            row(&format!("errors {}", kind.name()), n.to_string(), "");
        }
        if self.errors.values().all(|n| *n == 0) {
            row("errors", "0".into(), "");
        }
        out
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn per_s(n: u64, window_us: u64) -> f64 {
    if window_us == 0 { 0.0 } else { n as f64 / (window_us as f64 / 1e6) }
}

/// Latency and service time of the 2xx responses, in ns.
fn histograms(measured: &[&RequestRecord]) -> (LatencyHistogram, LatencyHistogram) {
    let (mut latency, mut service) = (LatencyHistogram::new(), LatencyHistogram::new());
    for r in measured.iter().filter(|r| r.is_ok()) {
        latency.record(r.latency_us().saturating_mul(1_000));
        if let Some(s) = r.service_us() {
            service.record(s.saturating_mul(1_000));
        }
    }
    (latency, service)
}

/// The measured window: the planned duration of a timed closed or open run; otherwise
/// from the warm-up's end to the last outcome.
fn window_us(plan: &LoadPlan, records: &[RequestRecord], warmup_us: u64) -> u64 {
    match (plan.stop, &plan.mode) {
        (Stop::Duration(d), m) if !matches!(m, Mode::Burst { .. }) => micros(d),
        _ => records.iter().map(|r| r.done_us).max().unwrap_or(0).saturating_sub(warmup_us),
    }
}

fn error_counts(measured: &[&RequestRecord]) -> BTreeMap<ErrorKind, u64> {
    let mut counts: BTreeMap<ErrorKind, u64> = ErrorKind::ALL.iter().map(|k| (*k, 0)).collect();
    for kind in measured.iter().filter_map(|r| r.error) {
        *counts.entry(kind).or_default() += 1;
    }
    counts
}

/// Sends per second after the warm-up: over the planned window for a timed run, else over
/// the span from the first send to the last.
fn send_rate(plan: &LoadPlan, measured: &[&RequestRecord], warmup_us: u64) -> f64 {
    let sends: Vec<u64> = measured.iter().filter_map(|r| r.sent_us).filter(|&s| s >= warmup_us).collect();
    if let Stop::Duration(d) = plan.stop {
        let end = warmup_us + micros(d);
        return per_s(sends.iter().filter(|&&s| s < end).count() as u64, micros(d));
    }
    match (sends.iter().min(), sends.iter().max()) {
        (Some(first), Some(last)) if last > first => per_s(sends.len() as u64 - 1, last - first),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TOL: f64 = 1e-9;

    fn rec(index: u64, intended_us: u64, sent_us: u64, done_us: u64, status: u16) -> RequestRecord {
        RequestRecord {
            index,
            intended_us,
            sent_us: Some(sent_us),
            done_us,
            status: Some(status),
            error: ErrorKind::of_status(status),
            body: None,
            server_timing: None,
            worker_pid: None,
        }
    }

    fn open_plan(stop: Stop, warmup_ms: u64) -> LoadPlan {
        let mut p =
            LoadPlan::new("http://127.0.0.1:1/", Mode::Open { rate_rps: 100.0, poisson: false }, stop);
        p.warmup = Duration::from_millis(warmup_ms);
        p
    }

    #[test]
    fn warmup_is_left_out_of_statistics() {
        let records = vec![
            rec(0, 0, 0, 50_000, 200),           // done in the warm-up
            rec(1, 10_000, 10_000, 90_000, 500), // failed in the warm-up
            rec(2, 100_000, 100_000, 110_000, 200),
            rec(3, 110_000, 130_000, 150_000, 200), // 20 ms late
            rec(4, 120_000, 120_000, 125_000, 503),
        ];
        let plan = open_plan(Stop::Requests(5), 100);
        let r = LoadReport::build(&plan, records, RunInfo::default());
        assert_eq!((r.requests, r.completed, r.warmup_completed, r.warmup_errors), (5, 2, 1, 1));
        assert_eq!(r.errors[&ErrorKind::Status5xx], 1);
        assert_eq!(r.errors.len(), ErrorKind::ALL.len());
        assert_eq!(r.late_sends, Some(1));
        // Latencies 10 ms and 40 ms from the intended times; service 10 ms and 20 ms.
        assert!((r.latency_ms.mean - 25.0).abs() < 0.05, "{:?}", r.latency_ms);
        assert!((r.service_ms.mean - 15.0).abs() < 0.05, "{:?}", r.service_ms);
        // Window: 100 ms (end of warm-up) to 150 ms (last outcome).
        assert!((r.duration_s - 0.05).abs() < TOL);
        assert!((r.throughput_rps - 40.0).abs() < TOL);
    }

    #[test]
    fn a_send_is_late_only_beyond_the_threshold() {
        let lags = [0, 50, LATE_SEND_US, LATE_SEND_US + 1, 20_000];
        let records: Vec<RequestRecord> = (0u64..)
            .zip(lags)
            .map(|(i, lag)| rec(i, i * 10_000, i * 10_000 + lag, i * 10_000 + lag + 1_000, 200))
            .collect();
        let r = LoadReport::build(&open_plan(Stop::Requests(5), 0), records, RunInfo::default());
        assert_eq!(r.late_sends, Some(2));
    }

    #[test]
    fn timed_runs_use_the_planned_window() {
        let records: Vec<RequestRecord> =
            (0..10).map(|i| rec(i, i * 100_000, i * 100_000, i * 100_000 + 5_000, 200)).collect();
        let plan = open_plan(Stop::Duration(Duration::from_secs(1)), 0);
        let r = LoadReport::build(&plan, records, RunInfo::default());
        assert!((r.duration_s - 1.0).abs() < TOL);
        assert!((r.throughput_rps - 10.0).abs() < TOL);
        assert_eq!(r.achieved_send_rps, Some(10.0));
        assert_eq!(r.target_rps, Some(100.0));
    }

    #[test]
    fn json_has_the_contract_keys_and_no_records() {
        let plan = open_plan(Stop::Requests(1), 0);
        let r = LoadReport::build(&plan, vec![rec(0, 0, 0, 1_000, 200)], RunInfo::default());
        let v = serde_json::to_value(&r).unwrap();
        for key in ["throughput_rps", "latency_ms", "service_ms", "completed", "errors", "late_sends", "mode"]
        {
            assert!(v.get(key).is_some(), "{key}");
        }
        for key in ["mean", "p50", "p95", "p99", "max"] {
            assert!(v["latency_ms"].get(key).is_some(), "{key}");
        }
        assert_eq!(v["errors"]["status_5xx"], 0);
        assert!(v.get("records").is_none());
    }

    #[test]
    fn closed_loop_has_no_open_loop_fields() {
        let mode = Mode::Closed { users: 1, think_ms: crate::workload::Dist::Const(0.0) };
        let plan = LoadPlan::new("http://127.0.0.1:1/", mode, Stop::Requests(1));
        let r = LoadReport::build(&plan, vec![rec(0, 0, 0, 1_000, 200)], RunInfo::default());
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("late_sends").is_none() && v.get("target_rps").is_none());
        assert!(r.table(&plan).contains("closed loop"));
    }
}
