//! Files of a sweep: `sweep.json`, `sweep.csv` and, for one or two swept parameters, plots.

use super::report::{Staged, WriteError, csv_text};
#[cfg(feature = "plot")]
use super::sweep::PointResult;
use super::sweep::SweepOutput;
use std::path::{Path, PathBuf};

/// A figure of a point and its CI half-width.
#[cfg(feature = "plot")]
type Metric = fn(&PointResult) -> (f64, f64);

impl SweepOutput {
    /// One CSV row per point: index, the swept parameters, then every figure and its CI.
    pub fn csv(&self) -> String {
        let lead: Vec<Vec<(String, String)>> = self
            .points
            .iter()
            .map(|p| {
                std::iter::once(("index".to_string(), p.index.to_string()))
                    .chain(p.params.iter().cloned())
                    .collect()
            })
            .collect();
        let reports: Vec<_> = self.points.iter().map(|p| &p.report).collect();
        csv_text(&lead, &reports)
    }

    /// Writes `sweep.json`, `sweep.csv` and, when the `plot` feature is on and this is not
    /// one shard of several, the plots into `dir`: all of them or, on any failure, none
    /// (see [`Staged`]). Returns the files written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
        let mut staged = Staged::new();
        staged.add(&dir.join("sweep.json"), &serde_json::to_vec_pretty(self).unwrap_or_default())?;
        staged.add(&dir.join("sweep.csv"), self.csv().as_bytes())?;
        #[cfg(feature = "plot")]
        if self.shard.count == 1 {
            staged.add_drawn(dir, |scratch| self.plots(scratch))?;
        }
        staged.commit()
    }

    /// Numeric value of parameter `k` at a point, if it is a number.
    #[cfg(feature = "plot")]
    fn numeric(p: &PointResult, k: usize) -> Option<f64> {
        p.params.get(k).and_then(|(_, v)| v.parse::<f64>().ok())
    }

    #[cfg(feature = "plot")]
    fn plots(&self, dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
        use crate::plot::{Chart, Heatmap, Point, Series, SeriesKind};
        let axes = &self.sweep.grid.axes;
        let mut files = Vec::new();
        let metrics: [(&str, &str, Metric); 2] = [
            ("throughput", "throughput [req/s]", |p| {
                (p.report.figures.throughput_rps, p.report.ci95.throughput_rps)
            }),
            ("p95", "p95 latency [ms]", |p| (p.report.figures.latency_ms.p95, p.report.ci95.latency_ms.p95)),
        ];
        let numeric_x = self.points.iter().all(|p| Self::numeric(p, 0).is_some());
        for (name, label, get) in metrics {
            if numeric_x && axes.len() <= 2 {
                // One line per value of the second parameter (or one line).
                let groups: Vec<String> = match axes.get(1) {
                    Some(a) => a.values.iter().map(super::grid::show).collect(),
                    None => vec![String::new()],
                };
                let series = groups
                    .iter()
                    .enumerate()
                    .map(|(color, g)| {
                        let points = self
                            .points
                            .iter()
                            .filter(|p| axes.len() == 1 || p.params[1].1 == *g)
                            .map(|p| {
                                let (y, h) = get(p);
                                Point::with_half_width(Self::numeric(p, 0).unwrap_or(f64::NAN), y, h)
                            })
                            .collect();
                        let label = if axes.len() == 1 {
                            "predicted (95% CI)".into()
                        } else {
                            format!("{} = {g}", axes[1].path)
                        };
                        Series { label, kind: SeriesKind::Band, points, color }
                    })
                    .collect();
                let xs: Vec<f64> = self.points.iter().filter_map(|p| Self::numeric(p, 0)).collect();
                let log_x = xs.iter().all(|&x| x > 0.0)
                    && xs.iter().copied().fold(0.0, f64::max) / xs.iter().copied().fold(f64::MAX, f64::min)
                        >= 16.0;
                let chart = Chart {
                    title: format!("{} — {name} vs {}", self.sweep.scenario, axes[0].path),
                    x_label: axes[0].path.clone(),
                    y_label: label.into(),
                    log_x,
                    series,
                };
                files.extend(chart.save(&dir.join(format!("sweep-{name}")))?);
            }
            if axes.len() == 2 {
                let cols: Vec<String> = axes[1].values.iter().map(super::grid::show).collect();
                let rows: Vec<String> = axes[0].values.iter().map(super::grid::show).collect();
                let values = rows
                    .iter()
                    .enumerate()
                    .map(|(r, _)| (0..cols.len()).map(|c| get(&self.points[r * cols.len() + c]).0).collect())
                    .collect();
                let heat = Heatmap {
                    title: format!("{} — {label}", self.sweep.scenario),
                    x_label: axes[1].path.clone(),
                    y_label: axes[0].path.clone(),
                    cols,
                    rows,
                    values,
                };
                files.extend(heat.save(&dir.join(format!("sweep-{name}-heatmap")))?);
            }
        }
        Ok(files)
    }
}
