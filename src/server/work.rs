//! A request's emulated work, drawn when it is admitted: the loop's share, the handler's
//! share, and each token's locked and free work (ns); and, with batching, each batched
//! step's work, drawn by the scheduler.

use super::busy::ms_to_ns;
use super::config::EmulatedCost;
use crate::scenario::Batching;
use crate::workload::{Dist, Sampler};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use std::sync::{Mutex, PoisonError};

/// The emulated CPU work of one request [ns of the running thread's CPU time].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Work {
    /// Loop work before dispatch, without the lock.
    pub loop_in_free_ns: u64,
    /// Loop work before dispatch (locked when the loop locks).
    pub loop_in_ns: u64,
    /// Loop work after the handler (locked when the loop locks).
    pub loop_out_ns: u64,
    /// Loop work after the handler, without the lock.
    pub loop_out_free_ns: u64,
    /// Handler work holding the lock, before the model.
    pub request_locked_ns: u64,
    /// Handler work without the lock, before the model.
    pub request_free_ns: u64,
    /// Per generated token: (locked, free) work.
    pub tokens: Vec<(u64, u64)>,
}

/// Draws [`Work`] from the scenario's cost distributions, from one seeded stream per worker.
#[derive(Debug)]
pub struct CostSampler {
    loop_in_free: Sampler,
    loop_in: Sampler,
    loop_out: Sampler,
    loop_out_free: Sampler,
    request_locked: Sampler,
    request_free: Sampler,
    token_locked: Sampler,
    token_free: Sampler,
    new_tokens: Sampler,
    rng: Mutex<Xoshiro256PlusPlus>,
}

impl CostSampler {
    /// Samplers of `cost` and `new_tokens`, drawing from stream `worker` of `seed`.
    pub fn new(cost: &EmulatedCost, new_tokens: &Dist, seed: u64, worker: u32) -> Self {
        let stream = seed ^ (u64::from(worker) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self {
            loop_in_free: cost.loop_in_free_ms.sampler(),
            loop_in: cost.loop_in_ms.sampler(),
            loop_out: cost.loop_out_ms.sampler(),
            loop_out_free: cost.loop_out_free_ms.sampler(),
            request_locked: cost.request_locked_ms.sampler(),
            request_free: cost.request_free_ms.sampler(),
            token_locked: cost.token_locked_ms.sampler(),
            token_free: cost.token_free_ms.sampler(),
            new_tokens: new_tokens.sampler(),
            rng: Mutex::new(Xoshiro256PlusPlus::seed_from_u64(stream)),
        }
    }

    /// Tokens for a request that does not say: a draw of `workload.new_tokens`, rounded.
    pub fn draw_tokens(&self) -> u32 {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        let n = self.new_tokens.sample(&mut *rng).round();
        if n.is_finite() && n > 0.0 { n.min(f64::from(u32::MAX)) as u32 } else { 0 }
    }

    /// The work of a request that generates `tokens` tokens.
    pub fn draw(&self, tokens: u32) -> Work {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        let r = &mut *rng;
        let mut ns = |s: &Sampler| ms_to_ns(s.sample(r));
        Work {
            loop_in_free_ns: ns(&self.loop_in_free),
            loop_in_ns: ns(&self.loop_in),
            request_locked_ns: ns(&self.request_locked),
            request_free_ns: ns(&self.request_free),
            tokens: (0..tokens).map(|_| (ns(&self.token_locked), ns(&self.token_free))).collect(),
            loop_out_ns: ns(&self.loop_out),
            loop_out_free_ns: ns(&self.loop_out_free),
        }
    }
}

/// Draws the emulated work of batched steps: `batching.step_locked_ms + B·seq_locked_ms`
/// holding the lock and `batching.step_free_ms + B·seq_free_ms` without it, for a batch of
/// B (one draw of each distribution per step, as the simulator does). Owned by the
/// worker's scheduler thread, with a stream of its own.
#[derive(Debug)]
pub struct StepSampler {
    step_locked: Sampler,
    step_free: Sampler,
    seq_locked: Sampler,
    seq_free: Sampler,
    rng: Xoshiro256PlusPlus,
}

impl StepSampler {
    /// Samplers of `batching`, drawing from the batch stream of worker `worker` of `seed`.
    pub fn new(batching: &Batching, seed: u64, worker: u32) -> Self {
        let stream = seed ^ (u64::from(worker) + 1).wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0xBA7C;
        Self {
            step_locked: batching.step_locked_ms.sampler(),
            step_free: batching.step_free_ms.sampler(),
            seq_locked: batching.seq_locked_ms.sampler(),
            seq_free: batching.seq_free_ms.sampler(),
            rng: Xoshiro256PlusPlus::seed_from_u64(stream),
        }
    }

    /// The (locked, free) work of one step of `batch` sequences (ns).
    pub fn draw(&mut self, batch: u32) -> (u64, u64) {
        let (r, b) = (&mut self.rng, f64::from(batch));
        let locked = self.step_locked.sample(r) + b * self.seq_locked.sample(r);
        let free = self.step_free.sample(r) + b * self.seq_free.sample(r);
        (ms_to_ns(locked), ms_to_ns(free))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost() -> EmulatedCost {
        let c = |v| Dist::Const(v);
        EmulatedCost {
            loop_in_free_ms: c(0.01),
            loop_in_ms: c(0.3),
            loop_out_ms: c(0.2),
            loop_out_free_ms: c(0.0),
            loop_lock: true,
            request_locked_ms: c(1.0),
            request_free_ms: c(2.0),
            token_locked_ms: Dist::Exponential { mean: 1.5 },
            token_free_ms: c(0.5),
        }
    }

    #[test]
    fn draws_have_the_scenarios_values_and_one_pair_per_token() {
        let s = CostSampler::new(&cost(), &Dist::Uniform { min: 10.0, max: 30.0 }, 1, 0);
        assert!((0..100).map(|_| s.draw_tokens()).all(|n| (10..=30).contains(&n)));
        let w = s.draw(4);
        assert_eq!((w.loop_in_free_ns, w.loop_in_ns, w.loop_out_ns), (10_000, 300_000, 200_000));
        assert_eq!((w.request_locked_ns, w.request_free_ns), (1_000_000, 2_000_000));
        assert_eq!(w.tokens.len(), 4);
        assert!(w.tokens.iter().all(|&(_, f)| f == 500_000));
    }

    #[test]
    fn step_work_grows_with_the_batch() {
        let b = Batching {
            step_locked_ms: Dist::Const(0.5),
            seq_locked_ms: Dist::Const(0.25),
            step_free_ms: Dist::Const(1.0),
            seq_free_ms: Dist::Const(0.125),
            ..Batching::default()
        };
        let mut s = StepSampler::new(&b, 1, 0);
        for (batch, want) in [(1, (750_000, 1_125_000)), (4, (1_500_000, 1_500_000))] {
            assert_eq!(s.draw(batch), want, "batch {batch}");
        }
        assert_eq!(StepSampler::new(&Batching::default(), 1, 0).draw(8), (0, 0));
    }

    #[test]
    fn streams_are_seeded_per_worker() {
        let draw = |seed, worker| CostSampler::new(&cost(), &Dist::Const(20.0), seed, worker).draw(8).tokens;
        assert_eq!(draw(1, 0), draw(1, 0));
        assert_ne!(draw(1, 0), draw(1, 1));
        assert_ne!(draw(1, 0), draw(2, 0));
    }
}
