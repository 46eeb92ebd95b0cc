//! `servesim fit-usl`: the Universal Scalability Law fitted to a throughput-vs-concurrency
//! table from any source (a sweep, a validation, a measurement).

use crate::analytic::{AnalyticError, UslFit, fit_usl};
use serde::Serialize;
use std::path::Path;

/// Column names tried, in order, when none is given.
const X_NAMES: [&str; 5] = ["clients.users", "users", "concurrency", "n", "N"];
/// Column names tried for throughput.
const Y_NAMES: [&str; 4] = ["throughput_rps", "throughput", "x", "X"];

/// Why a table cannot be fitted.
#[derive(Debug, thiserror::Error)]
pub enum UslError {
    /// The file cannot be read or is not CSV.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A column is missing.
    #[error("{path} has no column {wanted}; its columns are: {columns}. Choose with --x / --y")]
    Column {
        /// The file.
        path: String,
        /// What was looked for.
        wanted: String,
        /// The header.
        columns: String,
    },
    /// A cell is not a number.
    #[error("{path}, line {line}: `{value}` in column {column} is not a number")]
    Cell {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// Column name.
        column: String,
        /// The cell.
        value: String,
    },
    /// The fit failed.
    #[error(transparent)]
    Fit(#[from] AnalyticError),
}

/// A fit and where its data came from.
#[derive(Debug, Clone, Serialize)]
pub struct UslReport {
    /// Concurrency column.
    pub x: String,
    /// Throughput column.
    pub y: String,
    /// The points, sorted by concurrency.
    pub points: Vec<(f64, f64)>,
    /// The fit.
    pub fit: UslFit,
    /// Concurrency of peak throughput (infinite when κ ≤ 0).
    pub peak_concurrency: f64,
    /// Throughput at the peak.
    pub peak_throughput: f64,
}

fn pick(
    header: &csv::StringRecord,
    given: Option<&str>,
    names: &[&str],
    path: &str,
) -> Result<usize, UslError> {
    let wanted: Vec<&str> = given.map_or(names.to_vec(), |g| vec![g]);
    wanted.iter().find_map(|w| header.iter().position(|h| h == *w)).ok_or_else(|| UslError::Column {
        path: path.into(),
        wanted: wanted.join(" or "),
        columns: header.iter().collect::<Vec<_>>().join(", "),
    })
}

/// The header and rows of a CSV file: a regular file of at most
/// [`MAX_FILE_BYTES`](crate::input::MAX_FILE_BYTES), with a header row.
pub fn read_csv(file: &Path) -> Result<(csv::StringRecord, Vec<csv::StringRecord>), UslError> {
    let path = file.display().to_string();
    let err = |message: String| UslError::Read { path: path.clone(), message };
    let meta = std::fs::metadata(file).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file; give a CSV file".into()));
    }
    let text = crate::input::read_text(file).map_err(|e| err(e.to_string()))?;
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let header = rdr.headers().map_err(|e| err(e.to_string()))?.clone();
    if header.iter().all(|h| h.trim().is_empty()) {
        let message = "the file is empty: give a header row (e.g. clients.users,throughput_rps) and a row \
                       per point";
        return Err(err(message.into()));
    }
    let rows = rdr.records().collect::<Result<Vec<_>, _>>().map_err(|e| err(e.to_string()))?;
    Ok((header, rows))
}

/// Reads `(concurrency, throughput)` from a CSV file and fits the USL.
pub fn fit_usl_csv(file: &Path, x: Option<&str>, y: Option<&str>) -> Result<UslReport, UslError> {
    let path = file.display().to_string();
    let (header, rows) = read_csv(file)?;
    let (xi, yi) = (pick(&header, x, &X_NAMES, &path)?, pick(&header, y, &Y_NAMES, &path)?);
    let mut points = Vec::new();
    for (i, rec) in rows.iter().enumerate() {
        let cell = |k: usize| -> Result<f64, UslError> {
            let v = rec.get(k).unwrap_or("");
            v.trim().parse().map_err(|_| UslError::Cell {
                path: path.clone(),
                line: i + 2,
                column: header[k].to_string(),
                value: v.into(),
            })
        };
        points.push((cell(xi)?, cell(yi)?));
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let fit = fit_usl(&points)?;
    let peak = fit.params.peak_concurrency();
    Ok(UslReport {
        x: header[xi].to_string(),
        y: header[yi].to_string(),
        peak_throughput: if peak.is_finite() { fit.params.throughput(peak) } else { f64::NAN },
        peak_concurrency: peak,
        points,
        fit,
    })
}
impl UslReport {
    /// The fit as `servesim fit-usl` prints it: the parameters with their CIs, R², the peak,
    /// and every point beside the curve.
    pub fn summary(&self) -> String {
        let r = self;
        let (p, ci) = (&r.fit.params, &r.fit.ci95);
        let mut s = format!("USL fit of {} vs {} ({} points)\n", r.y, r.x, r.fit.points);
        s.push_str(&format!("  λ = {:.6} ± {:.6}   (throughput of one)\n", p.lambda, ci.lambda));
        s.push_str(&format!("  σ = {:.6} ± {:.6}   (contention)\n", p.sigma, ci.sigma));
        s.push_str(&format!("  κ = {:.8} ± {:.8}   (coherency)\n", p.kappa, ci.kappa));
        s.push_str(&format!("  R² = {:.5}\n", r.fit.r_squared));
        if r.peak_concurrency.is_finite() {
            s.push_str(&format!(
                "  peak at N* = {:.1}, X(N*) = {:.4}\n",
                r.peak_concurrency, r.peak_throughput
            ));
        } else {
            s.push_str("  no peak: κ ≤ 0, throughput approaches λ/σ\n");
        }
        s.push_str(&format!("\n  {:>10} {:>14} {:>14} {:>9}\n", "N", "measured", "USL", "error"));
        for &(n, x) in &r.points {
            let m = p.throughput(n);
            s.push_str(&format!("  {n:>10} {x:>14.4} {m:>14.4} {:>8.2}%\n", 100.0 * (m - x) / x));
        }
        s
    }
}
