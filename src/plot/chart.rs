//! Line charts: predicted curves with confidence bands, measured points with error bars.

use super::font::{FAMILY, ensure_registered};
use super::{PlotError, SIZE, draw_err, outputs};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// One x value with its y and an interval around it (`lo ≤ y ≤ hi`; equal to `y` for none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Abscissa.
    pub x: f64,
    /// Value.
    pub y: f64,
    /// Lower end of the interval (CI or spread).
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
}

impl Point {
    /// A point with a symmetric interval `y ± half`.
    pub fn with_half_width(x: f64, y: f64, half: f64) -> Self {
        Self { x, y, lo: y - half, hi: y + half }
    }

    fn finite(&self) -> bool {
        self.x.is_finite() && self.y.is_finite() && self.lo.is_finite() && self.hi.is_finite()
    }
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    /// A line with a shaded band between `lo` and `hi` (a prediction with its CI).
    Band,
    /// Markers with vertical error bars from `lo` to `hi` (a measurement with its spread).
    Points,
    /// A dashed-looking thin line (a bound or reference curve).
    Reference,
}

/// A named series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// How it is drawn.
    pub kind: SeriesKind,
    /// Its points, in x order.
    pub points: Vec<Point>,
    /// Palette index: series that belong together (predicted and measured of one
    /// configuration) share a color.
    pub color: usize,
}

/// A chart of several series over one x axis.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart {
    /// Title at the top.
    pub title: String,
    /// X axis label (with unit).
    pub x_label: String,
    /// Y axis label (with unit).
    pub y_label: String,
    /// Logarithmic x axis (for 1, 2, 4 … 64 users).
    pub log_x: bool,
    /// The series.
    pub series: Vec<Series>,
}

fn color(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    PALETTE[i % PALETTE.len()]
}

impl Chart {
    /// Writes `stem.png` and `stem.svg`; returns their paths.
    pub fn save(&self, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
        // Before any backend exists: a bitmap backend writes its file when dropped.
        if self.bounds().is_none() {
            return Err(PlotError::Empty(self.title.clone()));
        }
        let [png, svg] = outputs(stem)?;
        ensure_registered();
        self.draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), &png)?;
        self.draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), &svg)?;
        Ok(vec![png, svg])
    }

    fn bounds(&self) -> Option<((f64, f64), (f64, f64))> {
        let pts = self.series.iter().flat_map(|s| s.points.iter()).filter(|p| p.finite());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in pts {
            x0 = x0.min(p.x);
            x1 = x1.max(p.x);
            y0 = y0.min(p.lo).min(p.y);
            y1 = y1.max(p.hi).max(p.y);
        }
        if x0 > x1 {
            return None;
        }
        let pad = |a: f64, b: f64| if b > a { (b - a) * 0.05 } else { a.abs().max(1.0) * 0.05 };
        let (xp, yp) = (pad(x0, x1), pad(y0, y1));
        let xs = if self.log_x {
            let (a, b) = (x0.max(f64::MIN_POSITIVE).log2(), x1.max(f64::MIN_POSITIVE).log2());
            (a - 0.25, b + 0.25)
        } else {
            (x0 - xp, x1 + xp)
        };
        Some((xs, ((y0 - yp).min(0.0).max(if y0 >= 0.0 { 0.0 } else { f64::MIN }), y1 + yp)))
    }

    fn draw<DB: DrawingBackend>(&self, area: DrawingArea<DB, Shift>, path: &Path) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        let ((x0, x1), (y0, y1)) = self.bounds().ok_or_else(|| PlotError::Empty(self.title.clone()))?;
        area.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        let layout = self.legend_layout(&area, path)?;
        let (area, legend) = area.split_vertically(area.dim_in_pixel().1.saturating_sub(layout.height));
        self.draw_legend(&legend, &layout, path)?;
        let mut builder = ChartBuilder::on(&area);
        builder.caption(&self.title, (FAMILY, 22)).margin(12).x_label_area_size(44).y_label_area_size(70);
        let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(|e| draw_err(path, e))?;
        self.mesh_and_series(&mut chart, path)?;
        area.present().map_err(|e| draw_err(path, e))
    }

    /// Where `x` sits on the axis: its log₂ on a log axis (labelled 1, 2, 4, …).
    fn axis_x(&self, x: f64) -> f64 {
        if self.log_x { x.log2() } else { x }
    }

    fn mesh_and_series<'a, DB>(
        &self,
        chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
        path: &Path,
    ) -> Result<(), PlotError>
    where
        DB: DrawingBackend + 'a,
        DB::ErrorType: 'static,
    {
        let log_x = self.log_x;
        let x_fmt = move |v: &f64| {
            if !log_x {
                format!("{v}")
            } else if (v - v.round()).abs() < 1e-9 {
                format!("{}", 2f64.powf(v.round()))
            } else {
                String::new()
            }
        };
        let (x0, x1) = (chart.x_range().start, chart.x_range().end);
        let x_labels = if log_x { ((x1.floor() - x0.ceil()) as usize + 1).max(2) } else { 10 };
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_labels(x_labels)
            .x_label_formatter(&x_fmt)
            .label_style((FAMILY, 14))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(|e| draw_err(path, e))?;
        for s in &self.series {
            let c = color(s.color);
            let pts: Vec<Point> = s
                .points
                .iter()
                .filter(|p| p.finite() && (!log_x || p.x > 0.0))
                .map(|p| Point { x: self.axis_x(p.x), ..*p })
                .collect();
            match s.kind {
                SeriesKind::Band => {
                    let mut poly: Vec<(f64, f64)> = pts.iter().map(|p| (p.x, p.hi)).collect();
                    poly.extend(pts.iter().rev().map(|p| (p.x, p.lo)));
                    chart
                        .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18))))
                        .map_err(|e| draw_err(path, e))?;
                    chart
                        .draw_series(LineSeries::new(pts.iter().map(|p| (p.x, p.y)), c.stroke_width(2)))
                        .map_err(|e| draw_err(path, e))?;
                }
                SeriesKind::Points => {
                    chart
                        .draw_series(
                            pts.iter().map(|p| ErrorBar::new_vertical(p.x, p.lo, p.y, p.hi, c.filled(), 8)),
                        )
                        .map_err(|e| draw_err(path, e))?;
                    chart
                        .draw_series(pts.iter().map(|p| Circle::new((p.x, p.y), 4, c.filled())))
                        .map_err(|e| draw_err(path, e))?;
                }
                SeriesKind::Reference => {
                    chart
                        .draw_series(LineSeries::new(
                            pts.iter().map(|p| (p.x, p.y)),
                            c.mix(0.6).stroke_width(1),
                        ))
                        .map_err(|e| draw_err(path, e))?;
                }
            }
        }
        Ok(())
    }

    /// Columns, rows and height of the legend drawn under the chart: one entry per series,
    /// row by row (a configuration's predicted and measured series side by side), in as many
    /// columns as the widest label allows. Outside the plot, it hides no data.
    fn legend_layout<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        path: &Path,
    ) -> Result<LegendLayout, PlotError>
    where
        DB::ErrorType: 'static,
    {
        let font: TextStyle = (FAMILY, LEGEND_FONT).into();
        let mut widest = 0;
        for s in &self.series {
            widest = widest.max(area.estimate_text_size(&s.label, &font).map_err(|e| draw_err(path, e))?.0);
        }
        let column = widest + GLYPH + 2 * LEGEND_GAP;
        let usable = area.dim_in_pixel().0.saturating_sub(2 * LEGEND_MARGIN);
        let columns = (usable / column.max(1)).clamp(1, self.series.len().max(1) as u32);
        let rows = (self.series.len() as u32).div_ceil(columns);
        let height = if rows == 0 { 0 } else { rows * LEGEND_ROW + LEGEND_MARGIN };
        Ok(LegendLayout { columns, column, height })
    }

    /// Draws the legend in `area` (the strip under the chart).
    fn draw_legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        layout: &LegendLayout,
        path: &Path,
    ) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        let font = TextStyle::from((FAMILY, LEGEND_FONT)).pos(Pos::new(HPos::Left, VPos::Center));
        for (i, s) in self.series.iter().enumerate() {
            let (col, row) = (i as u32 % layout.columns, i as u32 / layout.columns);
            let x = (LEGEND_MARGIN + col * layout.column) as i32;
            let y = (row * LEGEND_ROW + LEGEND_ROW / 2) as i32;
            let c = color(s.color);
            let g = GLYPH as i32;
            match s.kind {
                SeriesKind::Band => {
                    area.draw(&Rectangle::new([(x, y - 5), (x + g, y + 5)], c.mix(0.18).filled()))
                        .map_err(|e| draw_err(path, e))?;
                    area.draw(&PathElement::new(vec![(x, y), (x + g, y)], c.stroke_width(2)))
                        .map_err(|e| draw_err(path, e))?;
                }
                SeriesKind::Points => {
                    area.draw(&PathElement::new(vec![(x + g / 2, y - 6), (x + g / 2, y + 6)], c.filled()))
                        .map_err(|e| draw_err(path, e))?;
                    area.draw(&Circle::new((x + g / 2, y), 4, c.filled())).map_err(|e| draw_err(path, e))?;
                }
                SeriesKind::Reference => {
                    area.draw(&PathElement::new(vec![(x, y), (x + g, y)], c.mix(0.6)))
                        .map_err(|e| draw_err(path, e))?;
                }
            }
            area.draw_text(&s.label, &font, (x + g + LEGEND_GAP as i32, y)).map_err(|e| draw_err(path, e))?;
        }
        Ok(())
    }
}

/// Where the legend's entries go (see [`Chart::legend_layout`]).
struct LegendLayout {
    columns: u32,
    column: u32,
    height: u32,
}

/// Legend text size [px].
const LEGEND_FONT: u32 = 13;
/// Height of one legend row [px].
const LEGEND_ROW: u32 = 18;
/// Width of an entry's glyph (line, band or marker) [px].
const GLYPH: u32 = 22;
/// Space after a glyph and between columns [px].
const LEGEND_GAP: u32 = 8;
/// Left margin of the legend, and the space under it [px].
const LEGEND_MARGIN: u32 = 12;
