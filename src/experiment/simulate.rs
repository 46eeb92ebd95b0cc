//! `servesim simulate`: replications of a scenario, with their wall time.

use crate::scenario::Scenario;
use crate::sim::{self, SimError, SimReport};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Instant;

/// What `servesim simulate --json` prints: the simulator's report plus timing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimulateOutput {
    /// The scenario's name.
    pub scenario: String,
    /// Always `"simulate"`.
    pub backend: String,
    /// The simulator's figures.
    #[serde(flatten)]
    pub report: SimReport,
    /// Wall time of all replications (s).
    pub sim_wall_s: f64,
    /// Events per wall-clock second.
    pub events_per_sec: f64,
}

/// Simulates a scenario and times it.
pub fn simulate(sc: &Scenario) -> Result<SimulateOutput, SimError> {
    let start = Instant::now();
    let report = sim::simulate(sc)?;
    let sim_wall_s = start.elapsed().as_secs_f64();
    Ok(SimulateOutput {
        scenario: sc.display_name().to_owned(),
        backend: "simulate".into(),
        events_per_sec: report.events as f64 / sim_wall_s.max(1e-9),
        report,
        sim_wall_s,
    })
}

impl SimulateOutput {
    /// A readable table of every figure with its 95% confidence interval.
    pub fn table(&self, sc: &Scenario) -> String {
        let (f, ci, r) = (&self.report.figures, &self.report.ci95, &self.report);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} — simulated, {} replications (seed {}), {} requests measured",
            self.scenario, r.replications, r.seed, r.completed
        );
        let _ = writeln!(out, "  {}\n", describe(sc));
        let _ = writeln!(out, "  {:<22} {:>12}  {:>10}", "figure", "mean", "± 95% CI");
        let mut row = |name: &str, v: f64, h: f64, unit: &str| {
            let _ = writeln!(out, "  {name:<22} {v:>12.3}  {h:>10.3}  {unit}");
        };
        row("throughput", f.throughput_rps, ci.throughput_rps, "req/s");
        let (l, lc) = (&f.latency_ms, &ci.latency_ms);
        row("latency mean", l.mean, lc.mean, "ms");
        row("latency p50", l.p50, lc.p50, "ms");
        row("latency p95", l.p95, lc.p95, "ms");
        row("latency p99", l.p99, lc.p99, "ms");
        row("latency max", l.max, lc.max, "ms");
        row("wait for a thread", f.waits_ms.thread, ci.waits_ms.thread, "ms");
        row("wait for the lock", f.waits_ms.lock, ci.waits_ms.lock, "ms");
        row("wait for the loop", f.waits_ms.event_loop, ci.waits_ms.event_loop, "ms");
        // The stages the real server reports in Server-Timing (see `sim::StageTimes`).
        for (i, name) in crate::sim::StageTimes::NAMES.iter().enumerate() {
            let (st, sc) = (f.stages_ms.get(i), ci.stages_ms.get(i));
            row(&format!("stage {name} mean"), st.mean, sc.mean, "ms");
            row(&format!("stage {name} p95"), st.p95, sc.p95, "ms");
        }
        let u = (&f.utilization, &ci.utilization);
        row("utilization cores", 100.0 * u.0.cores, 100.0 * u.1.cores, "%");
        row("utilization lock", 100.0 * u.0.lock, 100.0 * u.1.lock, "%");
        row("utilization threads", 100.0 * u.0.threads, 100.0 * u.1.threads, "%");
        row("utilization loop", 100.0 * u.0.event_loop, 100.0 * u.1.event_loop, "%");
        row("mean in system", f.mean_in_system, ci.mean_in_system, "requests");
        row("Little's law residual", 100.0 * f.little_residual, 100.0 * ci.little_residual, "%");
        if r.figures.gil_sleeps_per_request > 0.0 {
            row("GIL sleeps", f.gil_sleeps_per_request, ci.gil_sleeps_per_request, "per request");
        }
        if r.figures.gil_switches_per_request > 0.0 {
            row("GIL switches", f.gil_switches_per_request, ci.gil_switches_per_request, "per request");
            let share = (100.0 * f.gil_long_tenure_share, 100.0 * ci.gil_long_tenure_share);
            row("GIL tenures ≥ 1 ms", share.0, share.1, "% of the time");
        }
        let (g, gc) = (&f.gil_threads, &ci.gil_threads);
        if g.in_run > 0.0 {
            // Where the threads were on CPython's GIL (mean threads over the window).
            row("GIL: in their run", g.in_run, gc.in_run, "threads");
            row("GIL: asleep, timed wait", g.asleep_in_timed_wait, gc.asleep_in_timed_wait, "threads");
            row("GIL: blocked on mutex", g.blocked_on_mutex, gc.blocked_on_mutex, "threads");
            row("GIL: being woken", g.being_woken, gc.being_woken, "threads");
            row("GIL: woken, checking", g.woken_checking, gc.woken_checking, "threads");
            row("GIL: forced switch", g.waiting_for_switch, gc.waiting_for_switch, "threads");
        }
        let st = &r.stability;
        let _ = writeln!(
            out,
            "\n  capacity bound {:.3} req/s (bottleneck: {:?}); mean work {:.3} ms per request",
            st.capacity_rps, st.bottleneck, st.demand_ms
        );
        if st.unstable {
            let _ = writeln!(
                out,
                "  UNSTABLE: offered {:.3} req/s ≥ capacity {:.3} req/s — queues grow until \
                 worker.queue_limit refuses requests ({} refused); latencies depend on run length",
                st.offered_rps, st.capacity_rps, r.rejected
            );
        } else if r.rejected > 0 {
            let _ = writeln!(out, "  {} requests refused by worker.queue_limit", r.rejected);
        }
        if r.truncated {
            let why: Vec<String> = r.truncated_by.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "  TRUNCATED: a replication stopped before it measured run.requests ({})",
                if why.is_empty() { "run.max_sim_s".into() } else { why.join("; ") }
            );
        }
        let _ = writeln!(
            out,
            "  {} events in {:.3} s ({:.2} M events/s)",
            r.events,
            self.sim_wall_s,
            self.events_per_sec / 1e6
        );
        out
    }
}

/// One line that says what was simulated.
pub(crate) fn describe(sc: &Scenario) -> String {
    use crate::scenario::ClientKind::*;
    let c = &sc.clients;
    let clients = match c.kind {
        Closed => format!("{} closed-loop users (think {:.3} ms)", c.users, c.think_ms.mean()),
        Open => format!("open loop at {} req/s ({:?})", c.rate_rps, c.arrivals),
        Burst => format!("a burst of {} requests", c.burst),
        Trace => format!("a trace of {} arrivals", c.trace_ms.len()),
    };
    let (s, w) = (&sc.system, &sc.worker);
    format!(
        "{clients}; {} cores, {} worker(s) × {} threads, {:?} handler, {:?} lock",
        s.cores, s.workers, w.threads, w.handler, w.lock
    )
}
