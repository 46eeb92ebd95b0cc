//! What a capacity search reports: each visited candidate's verdict, the answer with its
//! evidence (figures, bottleneck, knee), and the closest cheaper candidate that missed.

use super::{CapacityQuery, Config};
use crate::sim::{Bottleneck, Figures};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What became of a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Its workers need more memory than the cap.
    TooMuchMemory {
        /// Memory needed (MB).
        memory_mb: f64,
    },
    /// Its capacity bound is below the rate it must hold.
    BoundBelowTarget {
        /// The bound (requests/s).
        capacity_rps: f64,
        /// The resource that sets it.
        bottleneck: Bottleneck,
    },
    /// A request's own CPU work already exceeds the SLO: a lower bound on the SLO's figure
    /// of the work (its mean, or its quantile by Cantelli's inequality) is over the limit.
    WorkOverSlo {
        /// Mean work per request (ms).
        demand_ms: f64,
    },
    /// The open-system lower bound on mean latency of one resource is over a mean-latency
    /// SLO ([`crate::analytic::open_response_lower_bound`]).
    LatencyBoundOverSlo {
        /// The bound (ms).
        bound_ms: f64,
        /// The resource that gives it.
        resource: Bottleneck,
    },
    /// Simulated, and the figure's CI is not under the limit.
    Misses {
        /// The simulated figure (ms).
        value_ms: f64,
        /// Its CI half-width (ms).
        ci95_ms: f64,
        /// Requests refused by the admission queue.
        rejected: u64,
    },
    /// Simulated, and it meets the SLO.
    Meets {
        /// The simulated figure (ms).
        value_ms: f64,
        /// Its CI half-width (ms).
        ci95_ms: f64,
    },
}

impl Verdict {
    /// Tags of the verdicts that prune without simulating, in the order the screens run.
    pub const SCREENS: [&'static str; 4] =
        ["too-much-memory", "bound-below-target", "work-over-slo", "latency-bound-over-slo"];

    /// Its `verdict` tag in JSON.
    pub fn tag(&self) -> &'static str {
        match self {
            Verdict::TooMuchMemory { .. } => "too-much-memory",
            Verdict::BoundBelowTarget { .. } => "bound-below-target",
            Verdict::WorkOverSlo { .. } => "work-over-slo",
            Verdict::LatencyBoundOverSlo { .. } => "latency-bound-over-slo",
            Verdict::Misses { .. } => "misses",
            Verdict::Meets { .. } => "meets",
        }
    }
}

/// A visited candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The configuration.
    pub config: Config,
    /// Its memory (MB).
    pub memory_mb: f64,
    /// What became of it.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The highest rate that still meets the SLO.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Knee {
    /// Where the simulated figure crosses the limit (requests/s).
    pub rps: f64,
    /// Where its upper 95% bound crosses it.
    pub lo_rps: f64,
    /// Where its lower 95% bound crosses it.
    pub hi_rps: f64,
}

/// The chosen configuration with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The configuration.
    pub config: Config,
    /// Its memory (MB).
    pub memory_mb: f64,
    /// Simulated figures at `target · (1 + headroom)`.
    pub figures: Figures,
    /// Their CI half-widths.
    pub ci95: Figures,
    /// The resource that bounds it.
    pub bottleneck: Bottleneck,
    /// Its capacity bound (requests/s).
    pub capacity_rps: f64,
    /// The knee.
    pub knee: Knee,
}

/// The result of a capacity search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    /// The question.
    pub query: CapacityQuery,
    /// The cheapest configuration that meets it, if any does.
    pub answer: Option<Answer>,
    /// The closest candidate strictly cheaper than the answer (fewer cores, or as many and
    /// less memory) that was simulated and missed — the evidence that the answer is the
    /// cheapest. `None` without an answer, or when every cheaper candidate was pruned.
    pub cheaper: Option<Evaluation>,
    /// Candidates pruned without simulation.
    pub pruned: usize,
    /// The same, by verdict (the `verdict` tags of `evaluated`), every screen listed.
    pub pruned_by: BTreeMap<String, usize>,
    /// Candidates simulated.
    pub simulated: usize,
    /// Every candidate visited, cheapest first.
    pub evaluated: Vec<Evaluation>,
}

/// The last simulated miss, in search order, that costs strictly less than `answer`
/// (cores, memory): fewer cores, or as many and less memory.
pub(super) fn closest_cheaper(evaluated: &[Evaluation], answer: (u32, f64)) -> Option<Evaluation> {
    let cheaper =
        |e: &Evaluation| e.config.cores < answer.0 || (e.config.cores == answer.0 && e.memory_mb < answer.1);
    evaluated.iter().rev().find(|e| matches!(e.verdict, Verdict::Misses { .. }) && cheaper(e)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Handler;

    fn config(cores: u32, workers: u32, threads: u32) -> Config {
        Config { cores, workers, handler: Handler::Sync, threads, max_batch: 0 }
    }

    #[test]
    fn the_next_cheaper_is_strictly_cheaper_than_the_answer() {
        let e = |cores, memory_mb, verdict: Verdict| Evaluation {
            config: config(cores, 1, 1),
            memory_mb,
            verdict,
        };
        let miss = || Verdict::Misses { value_ms: 400.0, ci95_ms: 1.0, rejected: 0 };
        let pruned = || Verdict::BoundBelowTarget { capacity_rps: 1.0, bottleneck: Bottleneck::Lock };
        // Search order: cheapest first; the last two cost as much as the answer (5, 32).
        let evaluated = [e(4, 16.0, miss()), e(4, 64.0, miss()), e(5, 16.0, pruned()), e(5, 32.0, miss())];
        assert_eq!(closest_cheaper(&evaluated, (5, 32.0)), Some(evaluated[1].clone()));
        // Same cores, less memory counts as cheaper.
        assert_eq!(closest_cheaper(&evaluated[..3], (4, 64.0)), Some(evaluated[0].clone()));
        // Only pruned or equally cheap candidates: none.
        assert_eq!(closest_cheaper(&evaluated[2..], (5, 32.0)), None);
    }
}
