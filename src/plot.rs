//! Figures with plotters: every chart is written as PNG and SVG.
//!
//! PNG text is rendered with a bundled font (DejaVu Sans, `assets/fonts/`), so figures render
//! on a fresh machine with no system fonts; SVG keeps its text as SVG text.
//!
//! * [`Chart`] — lines with confidence bands (predictions) and points with error bars
//!   (measurements), optionally on a log x axis.
//! * [`Heatmap`] — a value over a grid of two parameters (sweeps).

mod chart;
mod font;
mod heatmap;

pub use chart::{Chart, Point, Series, SeriesKind};
pub use heatmap::Heatmap;

use std::path::{Path, PathBuf};

/// Why a figure could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The output directory could not be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// plotters failed to draw or write the file.
    #[error("cannot draw {path}: {message}")]
    Draw {
        /// The file.
        path: PathBuf,
        /// The drawing backend's message.
        message: String,
    },
    /// Nothing to draw.
    #[error("{0}: no finite data to draw")]
    Empty(String),
}

/// Figure size [pixels].
pub(crate) const SIZE: (u32, u32) = (960, 600);

/// `stem.png` and `stem.svg`, after creating the directory.
pub(crate) fn outputs(stem: &Path) -> Result<[PathBuf; 2], PlotError> {
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PlotError::Dir { path: dir.to_owned(), source })?;
    }
    Ok([stem.with_extension("png"), stem.with_extension("svg")])
}

pub(crate) fn draw_err(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw { path: path.to_owned(), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_chart() -> Chart {
        let pred: Vec<Point> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
            .iter()
            .map(|&n: &f64| Point::with_half_width(n, 30.0 * n / (n + 3.0), 0.5 + n * 0.02))
            .collect();
        let meas: Vec<Point> = pred.iter().map(|p| Point::with_half_width(p.x, p.y * 1.03, 0.8)).collect();
        Chart {
            title: "throughput vs users".into(),
            x_label: "users".into(),
            y_label: "throughput [req/s]".into(),
            log_x: true,
            series: vec![
                Series { label: "predicted".into(), kind: SeriesKind::Band, points: pred, color: 0 },
                Series { label: "measured".into(), kind: SeriesKind::Points, points: meas, color: 1 },
            ],
        }
    }

    #[test]
    fn chart_writes_png_and_svg_with_text() {
        let dir = tempfile::Builder::new().prefix("servesim-plot-").tempdir().unwrap();
        let files = sample_chart().save(&dir.path().join("chart")).unwrap();
        let png = std::fs::read(&files[0]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        assert!(svg.contains("<svg") && svg.contains("throughput vs users"));
        let heat = Heatmap {
            title: "p95".into(),
            x_label: "threads".into(),
            y_label: "workers".into(),
            cols: vec!["1".into(), "2".into()],
            rows: vec!["1".into(), "2".into(), "4".into()],
            values: vec![vec![1.0, 2.0], vec![3.0, f64::NAN], vec![5.0, 6.0]],
        };
        let files = heat.save(&dir.path().join("heat")).unwrap();
        assert!(std::fs::metadata(&files[0]).unwrap().len() > 1000);
    }

    /// The y coordinate of the first SVG text element whose content is `text`.
    fn text_y(svg: &str, text: &str) -> f64 {
        svg.split("<text")
            .skip(1)
            .find_map(|el| {
                let (tag, rest) = el.split_once('>')?;
                let content = rest.split("</text>").next()?.trim();
                if content != text {
                    return None;
                }
                tag.split(" y=\"").nth(1)?.split('"').next()?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no text {text:?}"))
    }

    #[test]
    fn the_legend_names_every_series_under_the_plot() {
        let dir = tempfile::Builder::new().prefix("servesim-legend-").tempdir().unwrap();
        let files = sample_chart().save(&dir.path().join("chart")).unwrap();
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        let axis = text_y(&svg, "users");
        for label in ["predicted", "measured"] {
            assert!(text_y(&svg, label) > axis, "{label} is drawn under the x axis label");
        }
    }

    #[test]
    fn an_empty_chart_is_an_error_and_writes_no_file() {
        let dir = tempfile::Builder::new().prefix("servesim-empty-").tempdir().unwrap();
        let stem = dir.path().join("empty");
        let e = Chart { title: "t".into(), ..Chart::default() }.save(&stem);
        assert!(matches!(e, Err(PlotError::Empty(_))));
        let heat = Heatmap { title: "t".into(), values: vec![vec![f64::NAN]], ..Heatmap::default() };
        assert!(matches!(heat.save(&stem), Err(PlotError::Empty(_))));
        for ext in ["png", "svg"] {
            assert!(!stem.with_extension(ext).exists(), "an empty chart left a .{ext} file");
        }
    }
}
