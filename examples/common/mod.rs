//! What the measuring examples share: the repository root, the calibration every point
//! uses, overrides from strings, and a wait for the CPUs to be quiet before each measured
//! point.
// Each example compiles its own copy and uses only some of it.
#![allow(dead_code)]

use servesim::experiment::{CalibrateOptions, Suite, ValidateOptions, Validation, calibration_at, validate};
use servesim::plot::{Point, Series, SeriesKind};
use servesim::scenario::{Calibration, Override, Scenario};
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The calibration every point shares — the committed one if it was taken on this machine,
/// else one taken now — and its path.
pub fn calibration(base: &Path) -> Result<(PathBuf, Calibration)> {
    if servesim::server::find_binary().is_none() {
        return Err("no `servesim` binary next to this example: run `cargo build --release` first".into());
    }
    let path = root().join("validation/calibration.json");
    let cal = calibration_at(&path, &Scenario::load(base, &[])?, &CalibrateOptions::default(), |stage| {
        eprintln!("calibrating: {stage}")
    })?;
    Ok((path, cal))
}

/// `PATH=VALUE` overrides, parsed.
pub fn sets(list: &[String]) -> Result<Vec<Override>> {
    Ok(list.iter().map(|s| s.parse()).collect::<std::result::Result<_, _>>()?)
}

/// The most of the CPUs other processes may use around a measurement for it to count as
/// clean (2 cores: 0.15 is 30% of one core).
pub const QUIET: f64 = 0.15;

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
/// warning, once its budget of waiting (e.g. `QUIET_BUDGET`) is spent.
pub struct Quiet(pub std::time::Duration);

pub const QUIET_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

impl Quiet {
    /// Waits; returns the share of the CPUs other processes used at the last probe.
    pub fn wait(&mut self) -> f64 {
        loop {
            let t0 = std::time::Instant::now();
            let busy = others_busy();
            self.0 = self.0.saturating_sub(t0.elapsed());
            if busy <= QUIET {
                return busy;
            }
            if self.0.is_zero() {
                eprintln!(
                    "warning: other processes use {:.0}% of the CPUs; measured figures will be low",
                    busy * 100.0
                );
                return busy;
            }
            eprintln!("other processes use {:.0}% of the CPUs: waiting for them", busy * 100.0);
            std::thread::sleep(std::time::Duration::from_secs(2).min(self.0));
            self.0 = self.0.saturating_sub(std::time::Duration::from_secs(2));
        }
    }
}

/// Predicts and measures every point of `suite` on calibration `cal`, 150 measured and 4,000
/// simulated requests a point, waiting for quiet CPUs before each point.
pub fn validate_quietly(suite: Suite, cal: PathBuf) -> Result<Validation> {
    let opts = ValidateOptions {
        calibration: Some(cal),
        requests: 150,
        repeats: 1,
        sim_requests: 4000,
        ..Default::default()
    };
    let mut quiet = Quiet(QUIET_BUDGET);
    Ok(validate(&[suite], &opts, |done, total, label| {
        eprintln!("[{done}/{total}] {label}");
        if done < total {
            quiet.wait();
        }
    })?)
}

/// The series of a throughput chart: the capacity bound (a reference line), the prediction
/// with its CI (a band) and the measurements (points with their spread).
pub fn bound_predicted_measured(
    bound_label: &str,
    bound: Vec<Point>,
    predicted: Vec<Point>,
    measured: Vec<Point>,
) -> Vec<Series> {
    vec![
        Series { label: bound_label.into(), kind: SeriesKind::Reference, color: 2, points: bound },
        Series { label: "predicted".into(), kind: SeriesKind::Band, color: 0, points: predicted },
        Series { label: "measured".into(), kind: SeriesKind::Points, color: 1, points: measured },
    ]
}
