//! What the measuring examples share: the repository root, the calibration every point
//! uses, and a wait for the CPUs to be quiet before each measured point.

use servesim::experiment::{CalibrateOptions, calibration_at};
use servesim::scenario::Scenario;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The calibration every point shares: the committed one if it was taken on this machine.
pub fn calibration(base: &Path) -> Result<PathBuf> {
    if servesim::server::find_binary().is_none() {
        return Err("no `servesim` binary next to this example: run `cargo build --release` first".into());
    }
    let path = root().join("validation/calibration.json");
    calibration_at(&path, &Scenario::load(base, &[])?, &CalibrateOptions::default(), |stage| {
        eprintln!("calibrating: {stage}")
    })?;
    Ok(path)
}

/// Share of the machine's CPU time other processes used over a quarter second (from
/// `/proc/stat`, sampled while this process is idle).
pub fn others_busy() -> f64 {
    let sample = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let v: Vec<u64> =
            stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        Some((v.iter().sum(), v.get(3)? + v.get(4).unwrap_or(&0)))
    };
    let a = sample();
    std::thread::sleep(std::time::Duration::from_millis(250));
    match (a, sample()) {
        (Some((t0, i0)), Some((t1, i1))) if t1 > t0 => 1.0 - (i1 - i0) as f64 / (t1 - t0) as f64,
        _ => 0.0,
    }
}

/// Waits before each measured point until other processes leave the CPUs alone: on a
/// 2-core machine a build running beside the server takes a core from it. Gives up, with a
/// warning, once `QUIET_BUDGET` of waiting is spent.
pub struct Quiet(pub std::time::Duration);

pub const QUIET_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

impl Quiet {
    pub fn wait(&mut self) {
        loop {
            let t0 = std::time::Instant::now();
            let busy = others_busy();
            self.0 = self.0.saturating_sub(t0.elapsed());
            if busy <= 0.15 {
                return;
            }
            if self.0.is_zero() {
                eprintln!(
                    "warning: other processes use {:.0}% of the CPUs; measured figures will be low",
                    busy * 100.0
                );
                return;
            }
            eprintln!("other processes use {:.0}% of the CPUs: waiting for them", busy * 100.0);
            std::thread::sleep(std::time::Duration::from_secs(2).min(self.0));
            self.0 = self.0.saturating_sub(std::time::Duration::from_secs(2));
        }
    }
}
