//! The measured runs of a validation, kept beside its report (`measurements.json`), so that
//! the same measurements can be predicted again — by a changed scenario or another version
//! of the simulator — without starting a server or measuring anything (`validate --from`).

use super::super::measure::{MeasureReport, Window};
use super::{ValidateError, label_of};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The version of the file's layout.
const FORMAT: u32 = 1;

/// Every measured run of a validation, point by point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    /// The file's layout version.
    pub format: u32,
    /// Where and when they were measured.
    pub machine: crate::scenario::Machine,
    /// Measured requests per run (an open loop's trace has as many).
    pub requests: u64,
    /// Runs per point: the validation's passes.
    pub repeats: u32,
    /// The calibration the validation predicted with, as it was given (a relative path from
    /// where it ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<String>,
    /// Every point, in the validation's order.
    pub points: Vec<MeasuredPoint>,
}

/// One point's measured runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredPoint {
    /// The suite it belongs to.
    pub suite: String,
    /// `path=value` of every swept axis.
    pub params: Vec<(String, String)>,
    /// One run per pass.
    pub runs: Vec<MeasuredRun>,
}

/// One measured run: the report and its measured requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredRun {
    /// What `measure` reported.
    pub report: MeasureReport,
    /// Its measured requests, which the report does not serialize.
    pub window: Window,
}

impl Measurements {
    /// The runs of `points` (each `(suite, params)` with its runs), measured on this machine.
    pub(super) fn new(
        requests: u64,
        repeats: u32,
        calibration: Option<String>,
        points: impl IntoIterator<Item = (String, Vec<(String, String)>, Vec<MeasureReport>)>,
    ) -> Self {
        let points = points
            .into_iter()
            .map(|(suite, params, runs)| MeasuredPoint {
                suite,
                params,
                runs: runs
                    .into_iter()
                    .map(|mut report| MeasuredRun { window: std::mem::take(&mut report.window), report })
                    .collect(),
            })
            .collect();
        Self { format: FORMAT, machine: crate::experiment::machine(), requests, repeats, calibration, points }
    }

    /// Reads a `measurements.json` that `validate` wrote (through the one bounded reader,
    /// [`crate::input::read_text`]).
    pub fn read(path: &Path) -> Result<Self, ValidateError> {
        let bad = |message: String| ValidateError::Saved { path: path.display().to_string(), message };
        let text = crate::input::read_text(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::FileTooLarge => bad(format!(
                "{e}; give the measurements.json that `servesim validate` writes beside its report"
            )),
            _ => bad(e.to_string()),
        })?;
        let m: Self = serde_json::from_str(&text).map_err(|e| {
            bad(format!("{e}: not the measurements.json that `servesim validate` writes beside its report"))
        })?;
        if m.format != FORMAT {
            return Err(bad(format!(
                "its format is {}, this servesim reads {FORMAT}: measure it again with this servesim",
                m.format
            )));
        }
        // Kept counts take the place of --requests and --repeats: bounded as those are.
        let (requests, repeats) = (m.requests, m.repeats);
        if !(1..=super::MAX_REQUESTS).contains(&requests) || !(1..=super::MAX_REPEATS).contains(&repeats) {
            return Err(bad(format!(
                "it says {requests} requests per run and {repeats} runs per point, beyond the 1..={} and \
                 1..={} a validation measures: not the measurements.json that `servesim validate` writes",
                super::MAX_REQUESTS,
                super::MAX_REPEATS
            )));
        }
        if let Some(p) = m.points.iter().find(|p| p.runs.len() != m.repeats as usize) {
            return Err(bad(format!(
                "point {} {} has {} runs where the file says {} per point",
                p.suite,
                label_of(&p.params),
                p.runs.len(),
                m.repeats
            )));
        }
        Ok(m)
    }

    /// The measured runs of the point `params` of suite `suite`, their reports whole again.
    pub(super) fn runs(
        &self,
        suite: &str,
        params: &[(String, String)],
    ) -> Result<Vec<MeasureReport>, String> {
        let p = self.points.iter().find(|p| p.suite == suite && p.params == params).ok_or_else(|| {
            format!(
                "the measurements have no point {suite} {}: predict again with the suites and sweeps they \
                 were measured with (their points: {})",
                label_of(params),
                self.points
                    .iter()
                    .map(|p| format!("{} {}", p.suite, label_of(&p.params)))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
        Ok(p.runs.iter().map(|r| MeasureReport { window: r.window.clone(), ..r.report.clone() }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_measurements_reads_back_whole_and_names_what_is_missing() {
        let report = MeasureReport {
            scenario: "s".into(),
            backend: "measure".into(),
            throughput_rps: 10.0,
            latency_ms: Default::default(),
            waits_ms: Default::default(),
            utilization: Default::default(),
            mean_in_system: 1.0,
            completed: 2,
            errors: 0,
            rejected: 0,
            errors_by_kind: Default::default(),
            sent: 2,
            window_s: 1.0,
            wall_s: 1.0,
            service_ms: Default::default(),
            memory_mb: 1.0,
            workers: Vec::new(),
            cpus: crate::affinity::CpuPlan {
                server: crate::affinity::CpuList(vec![0]),
                load: crate::affinity::CpuList(vec![0]),
                shared: true,
            },
            load_cpu_ms_per_request: 0.1,
            notes: Vec::new(),
            host_steal_pct: 0.0,
            server_timing: None,
            window: Window::default(),
        };
        let window = Window { start_us: 5, done_us: vec![10, 20], latency_us: vec![3, 4] };
        let params = vec![("clients.users".to_string(), "2".to_string())];
        let m = Measurements::new(
            2,
            1,
            None,
            [("s".to_string(), params.clone(), vec![MeasureReport { window: window.clone(), ..report }])],
        );
        let dir = tempfile::Builder::new().prefix("servesim-saved-").tempdir().expect("a scratch directory");
        let path = dir.path().join("measurements.json");
        std::fs::write(&path, serde_json::to_vec(&m).expect("serializes")).expect("written");
        let back = Measurements::read(&path).expect("reads back");
        assert_eq!(back, m);
        let runs = back.runs("s", &params).expect("the point is there");
        assert_eq!(runs[0].window, window, "the measured requests come back with the report");
        let other = vec![("clients.users".to_string(), "4".to_string())];
        let err = back.runs("s", &other).expect_err("no such point");
        assert!(err.contains("no point s users=4") && err.contains("s users=2"), "{err}");
        std::fs::write(&path, b"{\"format\": 1}").expect("written");
        let err = Measurements::read(&path).expect_err("not a measurements file").to_string();
        assert!(err.contains("measurements.json") && err.contains(&path.display().to_string()), "{err}");
    }
}
