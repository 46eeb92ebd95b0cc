//! Wake-ups of a parked thread, in rounds that must agree: what `calibrate` records as
//! `wake_us` and `vain_wake_us`.

use crate::scenario::Calibration;
use crate::server;
use crate::stats::Rounds;

/// Wake-ups timed per round.
const WAKE_PER_ROUND: u32 = 200;
/// Rounds first measured, and the most measured when they disagree.
const WAKE_ROUNDS: (usize, usize) = (5, 9);
/// The relative interquartile spread of the rounds' medians that counts as agreement: a
/// wake-up's latency moves with the idle state its core is in, so rounds a few minutes
/// apart differ by some tens of percent on a shared machine; past a quarter they describe
/// different machines.
const WAKE_SPREAD: f64 = 0.25;

/// A parked thread's wake-up costs on this machine, from rounds that agree.
#[derive(Debug, Clone, PartialEq)]
pub struct Wake {
    /// Latency samples of the rounds that are not outliers (µs).
    pub samples_us: Vec<f64>,
    /// Each round's median latency (µs), judged.
    pub latency: Rounds,
    /// Each round's CPU per vain wake-up (µs), judged.
    pub vain: Rounds,
}

/// Measures wake-ups in rounds (what `calibrate` records as `wake_us` and `vain_wake_us`);
/// rounds that disagree beyond a quarter of their median are measured again, up to nine
/// rounds in all. About a second.
pub fn wake_costs() -> Wake {
    let median = |v: &[f64]| Rounds::judge(v, WAKE_SPREAD).map_or(0.0, |r| r.median);
    let mut rounds: Vec<(Vec<f64>, f64)> = Vec::new();
    loop {
        let w = server::gil::wake::measure(WAKE_PER_ROUND);
        rounds.push((w.latency_us, w.vain_cpu_us));
        if rounds.len() < WAKE_ROUNDS.0 {
            continue;
        }
        let medians: Vec<f64> = rounds.iter().map(|(l, _)| median(l)).collect();
        let vains: Vec<f64> = rounds.iter().map(|r| r.1).collect();
        let latency = Rounds::judge(&medians, WAKE_SPREAD).expect("rounds were measured");
        let vain = Rounds::judge(&vains, WAKE_SPREAD).expect("rounds were measured");
        if (latency.stable && vain.stable) || rounds.len() >= WAKE_ROUNDS.1 {
            let samples_us = rounds
                .iter()
                .zip(&medians)
                .filter(|(_, m)| !latency.outliers.contains(m))
                .flat_map(|((l, _), _)| l.iter().copied())
                .collect();
            return Wake { samples_us, latency, vain };
        }
    }
}

/// Records the wake-up costs in `cal`, with the constants whose rounds disagreed; returns
/// the method's note on them.
pub(super) fn record(wake: Wake, cal: &mut Calibration) -> String {
    cal.wake_us = wake.samples_us;
    cal.vain_wake_us = wake.vain.median;
    cal.unstable = [("wake_us", &wake.latency), ("vain_wake_us", &wake.vain)]
        .iter()
        .filter(|(_, r)| !r.stable)
        .map(|(name, _)| name.to_string())
        .collect();
    let note = format!(
        "wake-ups: {} rounds of {WAKE_PER_ROUND} signals to a parked thread, median latency {:.1} µs \
         (rounds' spread {:.0}%), CPU of a vain wake-up {:.2} µs (spread {:.0}%)",
        wake.latency.rounds.len(),
        wake.latency.median,
        wake.latency.spread * 100.0,
        wake.vain.median,
        wake.vain.spread * 100.0
    );
    (cal.wake_rounds, cal.vain_wake_rounds) = (Some(wake.latency), Some(wake.vain));
    note
}
