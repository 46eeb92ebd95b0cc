//! Calibration files: reused on the machine that took them, written as pretty JSON.

use super::{CalibrateError, CalibrateOptions, calibrate};
use crate::experiment::machine;
use crate::scenario::{Calibration, Scenario};
use std::path::Path;

/// The calibration at `path` when it was taken on this machine (same host, CPU model and
/// CPU count); otherwise a new one, calibrated with `sc` and `opts` and written to `path`.
/// Examples and tests use it so that one calibration serves every run on a machine.
pub fn calibration_at(
    path: &Path,
    sc: &Scenario,
    opts: &CalibrateOptions,
    progress: impl FnMut(&str),
) -> Result<Calibration, CalibrateError> {
    let here = machine();
    if let Ok(cal) = Calibration::read(path) {
        let m = &cal.machine;
        if (m.hostname.as_str(), m.cpu_model.as_str(), m.cpus) == (&here.hostname, &here.cpu_model, here.cpus)
        {
            return Ok(cal);
        }
    }
    let cal = calibrate(sc, opts, progress)?;
    write_calibration(&cal, path)?;
    Ok(cal)
}

/// Writes a calibration as pretty JSON, creating its directory: whole or not at all, so a
/// failure half-way leaves the previous calibration in place (see
/// [`Staged`](crate::experiment::report::Staged)).
pub fn write_calibration(cal: &Calibration, path: &Path) -> Result<(), CalibrateError> {
    let fail = |e: &dyn std::fmt::Display| CalibrateError::File { path: path.into(), message: e.to_string() };
    let json = serde_json::to_vec_pretty(cal).map_err(|e| fail(&e))?;
    crate::experiment::report::write_all(&[(path.to_owned(), json)]).map_err(|e| fail(&e))
}
