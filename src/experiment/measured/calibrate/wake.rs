//! Wake-ups of a parked thread, in rounds that must agree: what `calibrate` records as
//! `wake_us`, `wake_busy_us`, `signal_us`, `vain_wake_us` and `mutex_wake_us`.

use crate::experiment::{CpuTicks, STEAL_LIMIT, stolen_since};
use crate::scenario::{Calibration, Cost};
use crate::server;
use crate::server::gil::wake::MUTEX_HOLD_US;
use crate::stats::Rounds;
use crate::workload::Dist;

/// Wake-ups timed per round.
const WAKE_PER_ROUND: u32 = 200;
/// Rounds first measured, and the most measured when they disagree.
const WAKE_ROUNDS: (usize, usize) = (5, 9);
/// The relative interquartile spread of the rounds' medians that counts as agreement: a
/// wake-up's latency moves with the idle state its core is in, so rounds a few minutes
/// apart differ by some tens of percent on a shared machine; past a quarter they describe
/// different machines.
const WAKE_SPREAD: f64 = 0.25;
/// Rounds set aside for the host's steal before stolen rounds are kept all the same.
const STOLEN_WAKE_ROUNDS: usize = 6;

/// A parked thread's wake-up costs on this machine, from rounds that agree.
#[derive(Debug, Clone, PartialEq)]
pub struct Wake {
    /// Latency samples of the rounds that are not outliers, another core idle (µs).
    pub samples_us: Vec<f64>,
    /// Each round's median latency (µs), judged.
    pub latency: Rounds,
    /// Latency samples of the rounds that are not outliers, every core busy (µs).
    pub busy_samples_us: Vec<f64>,
    /// Each round's median of those (µs), judged.
    pub busy_latency: Rounds,
    /// Each round's median time a signal took its signaller, another core idle (µs),
    /// judged.
    pub signal: Rounds,
    /// Each round's CPU per vain wake-up (µs), judged.
    pub vain: Rounds,
    /// Each round's median wake-up of a thread blocked on a mutex held briefly (µs),
    /// judged.
    pub mutex: Rounds,
    /// The most a virtual machine's host stole of the CPUs' ready time in a round kept (%).
    pub steal_pct: f64,
    /// Rounds set aside because the host stole more than [`STEAL_LIMIT`] of it.
    pub set_aside: usize,
}

impl Wake {
    /// One line of what was measured: each constant's median, and the latencies' rounds and
    /// spread.
    pub fn describe(&self) -> String {
        format!(
            "wake-up latency median {:.1} µs over {} rounds (spread {:.0}%) with the signaller computing \
             on, {:.1} µs (spread {:.0}%) with every core busy; a signal {:.1} µs of its signaller's time, \
             CPU of a vain wake-up {:.2} µs, a thread blocked on the GIL's mutex woken {:.1} µs after its unlock{}",
            self.latency.median,
            self.latency.rounds.len(),
            self.latency.spread * 100.0,
            self.busy_latency.median,
            self.busy_latency.spread * 100.0,
            self.signal.median,
            self.vain.median,
            self.mutex.median,
            self.steal_note()
        )
    }

    /// What the host's steal did to the rounds, if anything.
    fn steal_note(&self) -> String {
        match self.set_aside {
            0 => String::new(),
            k => format!(
                " ({k} more rounds set aside: the host stole over {:.0}% of the CPUs' time; the most in a \
                 round kept {:.1}%)",
                STEAL_LIMIT * 100.0,
                self.steal_pct
            ),
        }
    }

    /// Sets a scenario's wake-up costs to these: the latencies as their samples, the
    /// signal's, a vain wake-up's and a mutex wake-up's cost as their rounds' medians.
    pub fn apply(&self, cost: &mut Cost) {
        let samples = |v: &[f64]| Dist::Empirical { file: None, samples: v.to_vec().into() };
        cost.wake_us = samples(&self.samples_us);
        cost.wake_busy_us = Some(samples(&self.busy_samples_us));
        (cost.signal_us, cost.vain_wake_us) = (self.signal.median, self.vain.median);
        cost.mutex_wake_us = self.mutex.median;
    }
}

/// Measures wake-ups in rounds (what `calibrate` records as `wake_us`, `wake_busy_us`,
/// `signal_us`, `vain_wake_us` and `mutex_wake_us`); rounds that disagree beyond a quarter of their median are measured
/// again, up to nine rounds in all. About a second.
pub fn wake_costs() -> Wake {
    let median = |v: &[f64]| Rounds::judge(v, WAKE_SPREAD).map_or(0.0, |r| r.median);
    let (mut rounds, mut steals, mut set_aside) = (Vec::new(), Vec::new(), 0);
    loop {
        let ticks = CpuTicks::now();
        let round = server::gil::wake::measure(WAKE_PER_ROUND);
        let steal = stolen_since(ticks);
        // A round the host stole from timed the host's scheduling of the vCPUs, not this
        // kernel's wake-ups: set aside while others can be measured.
        if steal > STEAL_LIMIT && set_aside < STOLEN_WAKE_ROUNDS {
            set_aside += 1;
            continue;
        }
        rounds.push(round);
        steals.push(steal * 100.0);
        if rounds.len() < WAKE_ROUNDS.0 {
            continue;
        }
        let judge = |v: Vec<f64>| Rounds::judge(&v, WAKE_SPREAD).expect("rounds were measured");
        let latency = judge(rounds.iter().map(|w| median(&w.latency_us)).collect());
        let busy_latency = judge(rounds.iter().map(|w| median(&w.busy_latency_us)).collect());
        let signal = judge(rounds.iter().map(|w| median(&w.signal_us)).collect());
        let vain = judge(rounds.iter().map(|w| w.vain_cpu_us).collect());
        let mutex = judge(rounds.iter().map(|w| median(&w.mutex_us)).collect());
        let stable = [&latency, &busy_latency, &signal, &vain, &mutex].iter().all(|r| r.stable);
        if stable || rounds.len() >= WAKE_ROUNDS.1 {
            // The samples of the rounds whose median is not an outlier.
            let pool = |pick: fn(&server::gil::wake::WakeCosts) -> &Vec<f64>, judged: &Rounds| {
                rounds
                    .iter()
                    .filter(|w| !judged.outliers.contains(&median(pick(w))))
                    .flat_map(|w| pick(w).iter().copied())
                    .collect()
            };
            let samples_us = pool(|w| &w.latency_us, &latency);
            let busy_samples_us = pool(|w| &w.busy_latency_us, &busy_latency);
            let steal_pct = steals.iter().copied().fold(0.0, f64::max);
            return Wake {
                samples_us,
                latency,
                busy_samples_us,
                busy_latency,
                signal,
                vain,
                mutex,
                steal_pct,
                set_aside,
            };
        }
    }
}

/// Records the wake-up costs in `cal`, with the constants whose rounds disagreed; returns
/// the method's note on them.
pub(super) fn record(mut wake: Wake, cal: &mut Calibration) -> String {
    let steal_note = wake.steal_note();
    cal.wake_us = std::mem::take(&mut wake.samples_us);
    cal.wake_busy_us = std::mem::take(&mut wake.busy_samples_us);
    cal.signal_us = wake.signal.median;
    cal.vain_wake_us = wake.vain.median;
    cal.mutex_wake_us = wake.mutex.median;
    cal.unstable = [
        ("wake_us", &wake.latency),
        ("wake_busy_us", &wake.busy_latency),
        ("signal_us", &wake.signal),
        ("vain_wake_us", &wake.vain),
        ("mutex_wake_us", &wake.mutex),
    ]
    .iter()
    .filter(|(_, r)| !r.stable)
    .map(|(name, _)| name.to_string())
    .collect();
    let note = format!(
        "wake-ups: {} rounds of {WAKE_PER_ROUND} signals to a parked thread, median latency {:.1} µs \
         onto an idle core (rounds' spread {:.0}%), {:.1} µs with every core busy \
         (spread {:.0}%), a signal {:.1} µs of its signaller's time (spread {:.0}%), CPU of a \
         vain wake-up {:.2} µs (spread {:.0}%), a thread blocked on a mutex held {MUTEX_HOLD_US} µs \
         woken {:.1} µs after its unlock (spread {:.0}%){}",
        wake.latency.rounds.len(),
        wake.latency.median,
        wake.latency.spread * 100.0,
        wake.busy_latency.median,
        wake.busy_latency.spread * 100.0,
        wake.signal.median,
        wake.signal.spread * 100.0,
        wake.vain.median,
        wake.vain.spread * 100.0,
        wake.mutex.median,
        wake.mutex.spread * 100.0,
        steal_note
    );
    cal.host_steal_pct = cal.host_steal_pct.max(wake.steal_pct);
    (cal.wake_rounds, cal.wake_busy_rounds, cal.signal_rounds, cal.vain_wake_rounds) =
        (Some(wake.latency), Some(wake.busy_latency), Some(wake.signal), Some(wake.vain));
    cal.mutex_wake_rounds = Some(wake.mutex);
    note
}
