//! `servesim sweep`: a grid of scenarios simulated in parallel, with common random numbers
//! (every point uses the same seed, hence the same arrival and demand streams).

use super::grid::{Grid, GridError, Shard, show};
use crate::des::fnv1a;
use crate::scenario::{Override, Scenario, ScenarioError};
use crate::sim::{self, SimError, SimReport};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a sweep cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The grid or shard is malformed.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// A point's scenario is invalid (an unknown path, a bad value).
    #[error("point {index} ({params}): {source}")]
    Point {
        /// Point index.
        index: usize,
        /// Its parameter values.
        params: String,
        /// The scenario error.
        source: ScenarioError,
    },
    /// A point cannot be simulated.
    #[error("point {index} ({params}): {source}")]
    Sim {
        /// Point index.
        index: usize,
        /// Its parameter values.
        params: String,
        /// The simulator's error.
        source: SimError,
    },
    /// The scenario file cannot be read.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
}

/// What identifies a sweep: shards of one sweep share it, and only they may be merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepInfo {
    /// The base scenario's name.
    pub scenario: String,
    /// A fingerprint of the scenario text, overrides, grid and run settings.
    pub id: String,
    /// The grid.
    pub grid: Grid,
    /// Points in the whole grid.
    pub points: usize,
}

/// One simulated point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointResult {
    /// Index in the grid.
    pub index: usize,
    /// Swept parameters and their values at this point.
    pub params: Vec<(String, String)>,
    /// The simulator's report.
    #[serde(flatten)]
    pub report: SimReport,
}

/// The result of a sweep or of one shard of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepOutput {
    /// Which sweep.
    pub sweep: SweepInfo,
    /// Which shard (0/1 for a whole sweep).
    pub shard: Shard,
    /// The points of this shard, in grid order.
    pub points: Vec<PointResult>,
}

/// A point ready to run: its index, its parameter values and its scenario.
type PlannedPoint = (usize, Vec<(String, String)>, Scenario);

/// A sweep ready to run: every point's scenario loaded and validated.
pub struct SweepPlan {
    info: SweepInfo,
    shard: Shard,
    points: Vec<PlannedPoint>,
}

fn describe(overrides: &[Override]) -> Vec<(String, String)> {
    overrides.iter().map(|o| (o.path.clone(), show(&o.value))).collect()
}

impl SweepPlan {
    /// Loads the base scenario and validates every point of `shard` before anything runs, so
    /// a bad path or value fails at once, naming the point. An override of `sets` that the
    /// grid also sweeps is refused ([`Grid::check_fixed`]): the sweep would replace it.
    pub fn new(file: &Path, sets: &[Override], grid: Grid, shard: Shard) -> Result<Self, SweepError> {
        grid.check_fixed(sets)?;
        let text = crate::scenario::read_scenario(file)?;
        let base_dir = file.parent().unwrap_or(Path::new("."));
        let base = Scenario::parse(&text, file, base_dir, sets)?;
        let name = file.file_stem().map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
        let name = base.name.clone().unwrap_or(name);
        let fingerprint = serde_json::json!({ "text": text, "sets": describe(sets), "grid": grid });
        let id = format!("{:016x}", fnv1a(fingerprint.to_string().as_bytes()));
        let info = SweepInfo { scenario: name.clone(), id, points: grid.len(), grid };
        let mut points = Vec::new();
        for index in shard.points(&info.grid) {
            let over = info.grid.point(index);
            let params = describe(&over);
            // Parsed from the text rather than derived from `base` (`Scenario::with`), so that
            // a calibration is added after the point's overrides, as it is for a file.
            let all: Vec<Override> = sets.iter().chain(&over).cloned().collect();
            let mut sc = Scenario::parse(&text, file, base_dir, &all)
                .map_err(|source| SweepError::Point { index, params: label(&params), source })?;
            sc.name = Some(name.clone());
            sim::check_supported(&sc).map_err(|source| SweepError::Sim {
                index,
                params: label(&params),
                source,
            })?;
            points.push((index, params, sc));
        }
        Ok(Self { info, shard, points })
    }

    /// The sweep: scenario, fingerprint and grid.
    pub fn info(&self) -> &SweepInfo {
        &self.info
    }

    /// Number of points this plan runs.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the plan runs no point (a shard beyond a small grid).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Simulates every point in parallel; `tick` is called once per finished point.
    pub fn run(self, tick: &(dyn Fn() + Sync)) -> Result<SweepOutput, SweepError> {
        let results: Result<Vec<PointResult>, SweepError> = self
            .points
            .into_par_iter()
            .map(|(index, params, sc)| {
                let report = sim::simulate(&sc).map_err(|source| SweepError::Sim {
                    index,
                    params: label(&params),
                    source,
                })?;
                tick();
                Ok(PointResult { index, params, report })
            })
            .collect();
        Ok(SweepOutput { sweep: self.info, shard: self.shard, points: results? })
    }
}

/// `a=1, b=2`.
pub fn label(params: &[(String, String)]) -> String {
    params.iter().map(|(p, v)| format!("{p}={v}")).collect::<Vec<_>>().join(", ")
}

/// The default output directory of a sweep: `plots/sweep-<scenario>`.
pub fn default_out(info: &SweepInfo) -> PathBuf {
    PathBuf::from("plots").join(format!("sweep-{}", info.scenario))
}
impl SweepOutput {
    /// One line per point: throughput and p95 with their CIs, and the bottleneck.
    pub fn table(&self) -> String {
        let out = self;
        let mut s = format!(
            "{:<40} {:>12} {:>10} {:>10} {:>10}  bottleneck\n",
            "point", "X req/s", "±", "p95 ms", "±"
        );
        for p in &out.points {
            let (f, c) = (&p.report.figures, &p.report.ci95);
            s.push_str(&format!(
                "{:<40} {:>12.3} {:>10.3} {:>10.3} {:>10.3}  {:?}{}\n",
                label(&p.params),
                f.throughput_rps,
                c.throughput_rps,
                f.latency_ms.p95,
                c.latency_ms.p95,
                p.report.stability.bottleneck,
                if p.report.stability.unstable { " (unstable)" } else { "" }
            ));
        }
        s
    }
}
