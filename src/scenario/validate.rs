//! Range checks: every rule names the field, what it must be, and the value given.

use super::{ClientKind, Scenario, ScenarioError};
use crate::workload::Dist;

/// Largest count accepted for users, bursts, workers, threads and similar sizes; far beyond
/// any machine, small enough that memory stays bounded.
const MAX_COUNT: u64 = 1_000_000;

fn at_least<T: PartialOrd + std::fmt::Display>(field: &str, v: T, min: T) -> Result<(), ScenarioError> {
    if v >= min { Ok(()) } else { Err(ScenarioError::invalid(field, format!("must be ≥ {min}, got {v}"))) }
}

fn count(field: &str, v: u64, min: u64) -> Result<(), ScenarioError> {
    at_least(field, v, min)?;
    if v > MAX_COUNT {
        return Err(ScenarioError::invalid(field, format!("must be ≤ {MAX_COUNT}, got {v}")));
    }
    Ok(())
}

fn positive(field: &str, v: f64) -> Result<(), ScenarioError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(ScenarioError::invalid(field, format!("must be a finite number > 0, got {v}")))
    }
}

fn non_negative(field: &str, v: f64) -> Result<(), ScenarioError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(ScenarioError::invalid(field, format!("must be a finite number ≥ 0, got {v}")))
    }
}

impl Scenario {
    /// Every distribution of the scenario with its dotted path.
    pub fn dists_mut(&mut self) -> [(&'static str, &mut Dist); 15] {
        let c = &mut self.cost;
        let b = &mut self.batching;
        [
            ("clients.think_ms", &mut self.clients.think_ms),
            ("workload.new_tokens", &mut self.workload.new_tokens),
            ("cost.loop_in_ms", &mut c.loop_in_ms),
            ("cost.loop_out_ms", &mut c.loop_out_ms),
            ("cost.loop_in_free_ms", &mut c.loop_in_free_ms),
            ("cost.loop_out_free_ms", &mut c.loop_out_free_ms),
            ("cost.request_locked_ms", &mut c.request_locked_ms),
            ("cost.request_free_ms", &mut c.request_free_ms),
            ("cost.token_locked_ms", &mut c.token_locked_ms),
            ("cost.token_free_ms", &mut c.token_free_ms),
            ("cost.rtt_ms", &mut c.rtt_ms),
            ("batching.step_locked_ms", &mut b.step_locked_ms),
            ("batching.step_free_ms", &mut b.step_free_ms),
            ("batching.seq_locked_ms", &mut b.seq_locked_ms),
            ("batching.seq_free_ms", &mut b.seq_free_ms),
        ]
    }

    /// Checks every value; the first violation is returned with its path and the fix.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let (s, w, c, r) = (&self.system, &self.worker, &self.cost, &self.run);
        count("system.cores", s.cores.into(), 1)?;
        count("system.workers", s.workers.into(), 1)?;
        non_negative("system.worker_memory_mb", s.worker_memory_mb)?;
        non_negative("system.seq_memory_mb", s.seq_memory_mb)?;
        count("worker.threads", w.threads.into(), 1)?;
        count("worker.queue_limit", w.queue_limit.into(), 1)?;
        positive("worker.switch_interval_ms", w.switch_interval_ms)?;
        self.validate_clients()?;
        count("cost.release_points", c.release_points.into(), 1)?;
        non_negative("cost.handoff_us", c.handoff_us)?;
        count("batching.max_batch", self.batching.max_batch.into(), 1)?;
        non_negative("batching.max_wait_ms", self.batching.max_wait_ms)?;
        at_least("run.requests", r.requests, 1)?;
        count("run.replications", r.replications.into(), 1)?;
        positive("run.max_sim_s", r.max_sim_s)?;
        Ok(())
    }

    fn validate_clients(&self) -> Result<(), ScenarioError> {
        let k = &self.clients;
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
            ClientKind::Open => positive("clients.rate_rps", k.rate_rps),
            ClientKind::Burst => count("clients.burst", k.burst.into(), 1),
            ClientKind::Trace => match &k.trace {
                Some(_) => Ok(()),
                None => Err(ScenarioError::invalid(
                    "clients.trace",
                    "is required with kind = \"trace\": a CSV file of arrival times [ms]",
                )),
            },
        }
    }
}
