//! The batch scheduler's step at each batch size, and a joining sequence's prefill, timed
//! in process on the server's own code path.

use super::CalibrateOptions;
use crate::gpt::Model;
use crate::scenario::{BatchStep, Scenario};
use crate::server::{self, Gil};
use std::sync::Arc;
use std::time::Duration;

/// The calibration prompt: `prompt_chars` characters of a pangram, at most half the
/// model's context.
fn prompt(model: &Model, prompt_chars: usize) -> String {
    let chars = prompt_chars.clamp(1, model.config().context / 2);
    "the quick brown fox jumps over the lazy dog ".chars().cycle().take(chars).collect()
}

/// Milliseconds of a duration.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The prompt's forward pass as a request joining a batch pays it on the server (the GIL
/// dropped around every kernel), timed `batch_samples` times: (outside kernels, inside) (ms).
pub(super) fn prefill(model: &Model, prompt_chars: usize, opts: &CalibrateOptions) -> (Vec<f64>, Vec<f64>) {
    if opts.batch_sizes.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let prompt = prompt(model, prompt_chars);
    let gil = Arc::new(Gil::new(Some(Duration::from_millis(5))));
    let (mut locked, mut free) = (Vec::new(), Vec::new());
    for i in 0..opts.batch_samples + 3 {
        let (started, t) = server::time_prefill(model, Some(Arc::clone(&gil)), &prompt, 1);
        if started.is_err() {
            break;
        }
        if i >= 3 {
            free.push(ms(t.matmul));
            locked.push(ms(t.compute.saturating_sub(t.matmul)));
        }
    }
    (locked, free)
}

/// The emulated (locked, free) work of one batched step of `b` sequences in `sc` (ns): its
/// `batching.step_*` and `seq_*` means, or, when those are all zero, one token's
/// (`cost.token_*`), so that the emulation's own overhead is measured with work to do.
fn nominal_step_ns(sc: &Scenario, b: u32) -> (u64, u64) {
    let (bt, bf) = (&sc.batching, f64::from(b));
    let mut locked = bt.step_locked_ms.mean() + bf * bt.seq_locked_ms.mean();
    let mut free = bt.step_free_ms.mean() + bf * bt.seq_free_ms.mean();
    if locked == 0.0 && free == 0.0 {
        (locked, free) = (sc.cost.token_locked_ms.mean(), sc.cost.token_free_ms.mean());
    }
    (server::busy::ms_to_ns(locked), server::busy::ms_to_ns(free))
}

/// One step's (locked, free) time at each batch size, on the server's own code path: the
/// batch scheduler's step with the GIL and `sc`'s emulated step work, less that work's
/// nominal amount (so that what emulating it costs beyond nominal — clock reads and lock
/// operations at every slice — stays in the measured cost, as it does for tokens).
pub(super) fn batch_steps(model: &Model, sc: &Scenario, opts: &CalibrateOptions) -> Vec<BatchStep> {
    let context = model.config().context;
    let prompt = prompt(model, sc.workload.prompt_chars as usize);
    let room = context.saturating_sub(prompt.chars().count() + 2).max(2);
    let gil = Arc::new(Gil::new(Some(Duration::from_millis(5))));
    let mut ws = crate::gpt::Workspace::default();
    opts.batch_sizes
        .iter()
        .map(|&b| {
            let start = || {
                (0..b)
                    .map(|_| model.start(&prompt, room, false, &mut crate::gpt::NoHooks))
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_default()
            };
            let nominal = nominal_step_ns(sc, b);
            let (nominal_locked, nominal_free) = (nominal.0 as f64 / 1e6, nominal.1 as f64 / 1e6);
            let mut seqs = start();
            let mut step = BatchStep { batch: b, locked_ms: Vec::new(), free_ms: Vec::new() };
            for i in 0..opts.batch_samples + 3 {
                if seqs.is_empty() || seqs.iter().any(|s| s.is_finished()) {
                    seqs = start();
                }
                let mut refs: Vec<_> = seqs.iter_mut().collect();
                let t = server::time_batched_step(model, &mut ws, Some(Arc::clone(&gil)), &mut refs, nominal);
                if i >= 3 {
                    let free = ms(t.matmul) + ms(t.busy_free);
                    let locked = ms(t.compute) - free;
                    step.free_ms.push((free - nominal_free).max(0.0));
                    step.locked_ms.push((locked - nominal_locked).max(0.0));
                }
            }
            step
        })
        .collect()
}
