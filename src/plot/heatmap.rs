//! Heat maps: one value over a grid of two swept parameters.

use super::font::{FAMILY, ensure_registered};
use super::{PlotError, SIZE, draw_err, outputs};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// A value over a grid: `values[row][col]` at (`cols[col]`, `rows[row]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heatmap {
    /// Title at the top.
    pub title: String,
    /// What the columns are (x axis).
    pub x_label: String,
    /// What the rows are (y axis).
    pub y_label: String,
    /// Column labels.
    pub cols: Vec<String>,
    /// Row labels.
    pub rows: Vec<String>,
    /// Values, one row per entry of `rows`; non-finite cells are left blank.
    pub values: Vec<Vec<f64>>,
}

/// A blue-to-red scale for `t` in [0, 1].
fn scale(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(lerp(49.0, 215.0), lerp(130.0, 48.0), lerp(189.0, 39.0))
}

impl Heatmap {
    /// The finite values.
    fn finite(&self) -> Vec<f64> {
        self.values.iter().flatten().copied().filter(|v| v.is_finite()).collect()
    }

    /// Writes `stem.png` and `stem.svg`; returns their paths.
    pub fn save(&self, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
        // Before any backend exists: a bitmap backend writes its file when dropped.
        if self.finite().is_empty() || self.cols.is_empty() || self.rows.is_empty() {
            return Err(PlotError::Empty(self.title.clone()));
        }
        let [png, svg] = outputs(stem)?;
        ensure_registered();
        self.draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), &png)?;
        self.draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), &svg)?;
        Ok(vec![png, svg])
    }

    fn draw<DB: DrawingBackend>(&self, area: DrawingArea<DB, Shift>, path: &Path) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        let finite = self.finite();
        let lo = finite.iter().copied().fold(f64::MAX, f64::min);
        let hi = finite.iter().copied().fold(f64::MIN, f64::max);
        area.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        let (nc, nr) = (self.cols.len(), self.rows.len());
        let mut chart = ChartBuilder::on(&area)
            .caption(&self.title, (FAMILY, 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..nc as f64, 0.0..nr as f64)
            .map_err(|e| draw_err(path, e))?;
        let (cols, rows) = (self.cols.clone(), self.rows.clone());
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_labels(nc * 2 + 1)
            .y_labels(nr * 2 + 1)
            .x_label_formatter(&|x| label_at(&cols, *x))
            .y_label_formatter(&|y| label_at(&rows, *y))
            .label_style((FAMILY, 13))
            .draw()
            .map_err(|e| draw_err(path, e))?;
        for (r, row) in self.values.iter().enumerate() {
            for (c, &v) in row.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                let (x, y) = (c as f64, r as f64);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x, y), (x + 1.0, y + 1.0)],
                        scale(t).filled(),
                    )))
                    .map_err(|e| draw_err(path, e))?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{v:.3}"),
                        (x + 0.3, y + 0.55),
                        (FAMILY, 13).into_font().color(&WHITE),
                    )))
                    .map_err(|e| draw_err(path, e))?;
            }
        }
        area.present().map_err(|e| draw_err(path, e))
    }
}

/// The label of the cell whose centre is at `v` (labels sit at half-integers).
fn label_at(labels: &[String], v: f64) -> String {
    let i = v - 0.5;
    if (i - i.round()).abs() < 1e-6 && i >= 0.0 {
        labels.get(i.round() as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}
