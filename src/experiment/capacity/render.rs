//! The capacity report in words, as `servesim capacity` prints it.

use super::{CapacityReport, Config, Verdict};

impl Config {
    /// The configuration in words: cores, workers, and threads and handler (or batching).
    pub fn describe(&self) -> String {
        let c = self;
        let what = if c.max_batch > 0 {
            format!("continuous batching up to {}", c.max_batch)
        } else {
            format!("{} threads, {:?} handler", c.threads, c.handler)
        };
        format!("{} cores, {} worker(s), {what}", c.cores, c.workers)
    }
}

impl CapacityReport {
    /// The report as the terminal shows it: the target, what the bounds pruned, the answer
    /// with its figures, bottleneck and knee, and the next cheaper candidate.
    pub fn summary(&self) -> String {
        let r = self;
        let q = &r.query;
        let mut s = format!(
            "target {} req/s (checked at {:.3} req/s, {:.0}% headroom), SLO {:?} ≤ {} ms\n",
            q.target_rps,
            q.target_rps * (1.0 + q.headroom),
            q.headroom * 100.0,
            q.slo.metric,
            q.slo.limit_ms
        );
        let by: Vec<String> = Verdict::SCREENS
            .iter()
            .map(|t| format!("{} {}", r.pruned_by.get(*t).copied().unwrap_or(0), screen_name(t)))
            .collect();
        s.push_str(&format!(
            "{} candidates pruned by bounds ({}), {} simulated\n\n",
            r.pruned,
            by.join(", "),
            r.simulated
        ));
        let Some(a) = &r.answer else {
            s.push_str(
                "no configuration within the limits meets the SLO; raise --max-cores or --max-memory\n",
            );
            return s;
        };
        let (f, ci) = (&a.figures, &a.ci95);
        s.push_str(&format!("answer: {} ({:.1} MB)\n", a.config.describe(), a.memory_mb));
        s.push_str(&format!(
            "  throughput {:.3} ± {:.3} req/s; latency p50 {:.2}, p95 {:.2} ± {:.2}, p99 {:.2} ms\n",
            f.throughput_rps,
            ci.throughput_rps,
            f.latency_ms.p50,
            f.latency_ms.p95,
            ci.latency_ms.p95,
            f.latency_ms.p99
        ));
        let u = &f.utilization;
        s.push_str(&format!(
        "  bottleneck {:?} (bound {:.2} req/s); utilization: cores {:.0}%, lock {:.0}%, threads {:.0}%, loop {:.0}%\n",
        a.bottleneck,
        a.capacity_rps,
        100.0 * u.cores,
        100.0 * u.lock,
        100.0 * u.threads,
        100.0 * u.event_loop
    ));
        if a.config.max_batch > 0 {
            s.push_str(&format!(
            "  batch scheduler: {:.2} ± {:.2} sequences per step of at most {} (the simulator reports no busy share for it)\n",
            f.mean_batch, ci.mean_batch, a.config.max_batch
        ));
        }
        s.push_str(&format!(
            "  knee: {:.2} req/s still meets the SLO (95% interval {:.2}–{:.2})\n",
            a.knee.rps, a.knee.lo_rps, a.knee.hi_rps
        ));
        match &r.cheaper {
            Some(e) => {
                let why = match &e.verdict {
                    Verdict::Misses { value_ms, ci95_ms, rejected } => {
                        format!("{value_ms:.2} ± {ci95_ms:.2} ms, {rejected} refused")
                    }
                    other => format!("{other:?}"),
                };
                s.push_str(&format!(
                    "next cheaper simulated: {} ({:.1} MB) — misses ({why})\n",
                    e.config.describe(),
                    e.memory_mb
                ));
            }
            None => {
                s.push_str("next cheaper simulated: none — every cheaper candidate was pruned by a bound\n")
            }
        }
        s
    }
}

/// How the summary names a screen's verdict tag.
fn screen_name(tag: &str) -> &str {
    match tag {
        "too-much-memory" => "memory",
        "bound-below-target" => "capacity",
        "work-over-slo" => "work",
        "latency-bound-over-slo" => "latency",
        other => other,
    }
}
