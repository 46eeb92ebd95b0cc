//! How a validation is shown: a text table, a markdown report, CSV, JSON and plots.

use super::stages::{cell, miss_line, misses_by_stage};
use super::{Compared, SplitSource, ValidateError, ValidatedPoint, Validation, short};
use crate::experiment::STEAL_LIMIT;
use crate::experiment::report::Staged;
use crate::plot::{Chart, Point, Series, SeriesKind};
use crate::sim::StageTimes;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What the simulator does not model, and where it shows in the suite: the report's own
/// account of its misses.
const LEFT_OUT: &str = "
## Where the simulator and the machine part

* **Lock hand-offs are wake-ups, and wake-ups are not a constant.** Handing the GIL to a
  parked thread costs its CPU on the cores — the releaser's `unpark`, the waiter's park,
  a context switch: the calibrated `switch_us`, charged to the receiving thread whether
  or not a core is idle — and, while a core is idle, the time that core takes to leave
  its idle state (the calibrated `handoff_us`, the rest of what a run of cores + 1
  threads paid), no more than the waiter has waited. The real cost also grows with the
  number of parked threads and their cores' idle depth, which one number cannot follow:
  the GIL-bound pool points (`sync` / `async-offload` with the GIL, 2–64 users on 8
  threads, and the workers suite's single worker) come out low in throughput (1–18% on
  the 2-core machine these lines were written on, varying from run to run, and between
  the two handlers within one run). The onset of a convoy (see
  `examples/gil_contention.rs`) is where the real machine repeats itself least.
* **Time slices and the load generator, but not every wake-up.** The cores are simulated
  as the kernel's time slices, and the load generator's CPU (calibrated, one user) as a
  thread among the server's when they share the CPUs. Throughput follows; at 2–4 users on
  2 cores without a lock the measured p95 and p99 still run above the prediction (15–35%
  there): a few requests in twenty wait about one more time slice than the model gives
  them.
* **Two workers balanced by the kernel's hash.** The split of users over workers is luck;
  the section above predicts each such point again with the split its run had, so what
  remains is the model's error: with both cores always busy a hand-off costs only its
  CPU, and the simulator predicts 4–20% more throughput than two GIL-bound processes
  deliver (the same point measured 154–177 req/s from run to run).
* **A median between two modes is ill-conditioned.** With output lengths of 2 or 38 tokens
  with equal odds, the median falls between the two groups, and a few requests either way
  move it by a factor of two; p95 and p99 are the figures to read there.
* **A GIL-bound open queue near its capacity** (`batching mode=none`) is as sensitive to
  the hand-off cost as the pool points, and its latency grows as 1 / (1 − ρ): a capacity
  10–20% low becomes a latency several times too high at 50 req/s.
";

/// The markdown section on the points on several workers: what the two predictions are,
/// and the head of its table.
fn split_intro(split: &[(&ValidatedPoint, &super::SplitCheck)]) -> String {
    let by = split.first().map_or("hash's draws", |(_, c)| c.predicted_by());
    let text = if split.iter().any(|(_, c)| c.read_from == SplitSource::Answered) {
        format!(
            "\n## Workers: how the service split its users, and the model's error\n\nA closed-loop \
             user keeps its connection, and the worker that accepted it answers all its requests. \
             servesim is not told how the service picks that worker (uvicorn's `--workers` share one \
             listening socket: whichever worker wakes first accepts, which `system.balancer = \
             \"accept\"` models), so the point's prediction spreads requests by the scenario's \
             `system.balancer` ({by}); here it is also made with \
             the split each run had (users: the worker that answered most of each user's requests, \
             by the `x-worker-pid` header of its responses). The hash's draws, which model \
             `SO_REUSEPORT`, are not predicted for a service of your own. The difference between \
             the two predictions is how the split went; what remains against the measurement is \
             the model's."
        )
    } else {
        "\n## Workers: the hash's luck and the model's error\n\nThe kernel's `SO_REUSEPORT` hash \
         puts each connection on a worker whatever its load, and a closed-loop user keeps its \
         connection: the split of users over workers is luck. The point's prediction is over the \
         hash's draws (each replication its own); here it is also made with the split each run \
         had (users: the connections each worker accepted, from its own counters). The \
         difference between the two predictions is the hash's luck; what remains against the \
         measurement is the model's."
            .into()
    };
    format!(
        "{text}\n\n| point | users per worker | requests per worker | throughput: {by} / this split vs \
         measured | err | p95 ms: {by} / this split vs measured | err |\n|---|---|---|---|---:|---|---:|\n"
    )
}

impl Validation {
    /// The table and summary, as text.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let name = |p: &ValidatedPoint| format!("{} {}{}", p.suite, p.label(), p.mark());
        let w = self.points.iter().map(|p| name(p).chars().count()).max().unwrap_or(0).max(44);
        let _ = writeln!(
            s,
            "{:<w$} {:>22} {:>22} {:>22} {:>22}",
            "point", "throughput req/s", "p50 ms", "p95 ms", "p99 ms"
        );
        let _ = writeln!(s, "{:<w$} {:>22} {:>22} {:>22} {:>22}", "", "pred / meas / err", "", "", "");
        for p in &self.points {
            let _ = write!(s, "{:<w$}", name(p));
            for (_, c) in p.metrics() {
                let _ = write!(
                    s,
                    " {:>22}",
                    format!(
                        "{:.1}/{:.1}/{:+.1}%{}",
                        c.predicted,
                        c.measured,
                        c.error_pct,
                        if c.agrees { "~" } else { " " }
                    )
                );
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "(~: the two 95% CIs overlap, the error is within the runs' noise; * saturated: \
             predicted throughput ≥ 90% of the capacity bound or a resource ≥ 90% busy; ! unstable: offered load ≥ the \
             capacity bound; c calibration: a target's calibration fitted on it, left out of the summary; \
             s stolen: the host stole over {:.0}% of the CPUs' time while it was measured, left out of the summary)\n",
            STEAL_LIMIT * 100.0
        );
        s.push_str(&self.split_text());
        s.push_str(&self.misses_text(w));
        s.push_str(&self.summary_text());
        s
    }

    /// The points on several workers: each run's split and the prediction given it, against
    /// the point's own prediction (over the hash's draws, or by the scenario's balancer).
    pub fn split_text(&self) -> String {
        let mut s = String::new();
        let split: Vec<_> = self.points.iter().filter_map(|p| Some((p, p.split.as_ref()?))).collect();
        if split.is_empty() {
            return s;
        }
        let answered = split.iter().any(|(_, c)| c.read_from == SplitSource::Answered);
        let _ = writeln!(
            s,
            "{}, and throughput / p95 predicted without it and with that split",
            if answered {
                "workers of the target: the measured split of users (per worker, by the x-worker-pid \
                 of each user's responses)"
            } else {
                "workers balanced by the kernel's hash: the measured split of users (connections per \
                 worker)"
            }
        );
        for (p, c) in split {
            let _ = writeln!(
                s,
                "  {} {}: users {}  throughput {:.1} ({}) / {:.1} (this split) vs {:.1} \
                 measured: {:+.1}% / {:+.1}%{}   p95 {:.1} / {:.1} vs {:.1} ms: {:+.1}% / {:+.1}%{}",
                p.suite,
                p.label(),
                c.users_label(),
                p.throughput_rps.predicted,
                c.predicted_by(),
                c.throughput_rps.predicted,
                c.throughput_rps.measured,
                p.throughput_rps.error_pct,
                c.throughput_rps.error_pct,
                if c.throughput_rps.agrees { "~" } else { "" },
                p.p95_ms.predicted,
                c.p95_ms.predicted,
                c.p95_ms.measured,
                p.p95_ms.error_pct,
                c.p95_ms.error_pct,
                if c.p95_ms.agrees { "~" } else { "" },
            );
            if let Some(h) = &c.hash {
                let _ = writeln!(s, "    {}", h.describe(c.throughput_rps.measured));
            }
        }
        s.push('\n');
        s
    }

    /// Each point that misses its target with the stage that differs most, and the count
    /// per stage; nothing when no point has stages.
    fn misses_text(&self, w: usize) -> String {
        if self.points.iter().all(|p| p.stages.is_empty()) {
            return String::new();
        }
        let mut s = String::from(
            "Misses by stage (Server-Timing against the simulator's stages: the mean for a \
             throughput miss, the p95 for a p95 miss; predicted − measured; of queue, lock, held, free):\n",
        );
        for p in self.points.iter().filter(|p| !p.used_by_fit) {
            if let Some(m) = &p.miss {
                let _ = writeln!(s, "  {:<w$} {}", format!("{} {}", p.suite, p.label()), miss_line(p, m));
            }
        }
        match misses_by_stage(&self.points) {
            by if by.is_empty() => s.push_str("  no point misses its target beyond the noise\n\n"),
            by => {
                let _ = writeln!(s, "  misses per stage: {by}\n");
            }
        }
        s
    }

    /// Median and max |error| per metric, and the targets.
    pub fn summary_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<30} {:>7} {:>16} {:>14} {:>12}",
            "metric", "points", "median |error|", "max |error|", "CIs overlap"
        );
        for (name, e) in &self.summary {
            let _ = writeln!(
                s,
                "{name:<30} {:>7} {:>15.1}% {:>13.1}% {:>12}",
                e.points, e.median_abs_pct, e.max_abs_pct, e.agree
            );
        }
        for t in &self.targets {
            let _ = writeln!(
                s,
                "target: {:<42} ≤ {:>4.1}%  got {:>5.1}%  {}",
                t.name,
                t.limit_pct,
                t.value_pct,
                if t.met { "met" } else { "MISSED" }
            );
        }
        if let Some(note) = self.unstable_note() {
            let _ = writeln!(s, "{note}");
        }
        for note in &self.notes {
            let _ = writeln!(s, "note: {note}");
        }
        s
    }

    /// What a verdict resting on an unstable calibration must say, if it does.
    pub fn unstable_note(&self) -> Option<String> {
        (!self.calibration_unstable.is_empty()).then(|| {
            format!(
                "UNSTABLE CALIBRATION: the rounds of {} disagreed beyond their bound; this verdict \
                 rests on them",
                self.calibration_unstable.join(", ")
            )
        })
    }

    /// A markdown report: machine, method, summary, and the full table.
    pub fn markdown(&self, plots: &[PathBuf]) -> String {
        let m = &self.machine;
        let mut s = String::from("# servesim validation report\n\n");
        let _ = writeln!(
            s,
            "Run {} on `{}` ({}, {} CPUs, {}); {:.0} s.\n\n{}.\n",
            m.date, m.hostname, m.cpu_model, m.cpus, m.os, self.wall_s, self.method
        );
        if let Some(c) = &self.calibration {
            let _ = writeln!(s, "Calibration: `{c}`.\n");
        }
        let _ = writeln!(
            s,
            "## Summary\n\n| metric | points | median \\|error\\| | max \\|error\\| | CIs overlap |\n|---|---:|---:|---:|---:|"
        );
        for (name, e) in &self.summary {
            let _ = writeln!(
                s,
                "| {name} | {} | {:.1}% | {:.1}% | {} |",
                e.points, e.median_abs_pct, e.max_abs_pct, e.agree
            );
        }
        let _ = writeln!(s, "\n| target | limit | got | |\n|---|---:|---:|---|");
        for t in &self.targets {
            let _ = writeln!(
                s,
                "| {} | ≤ {:.0}% | {:.1}% | {} |",
                t.name.replace('|', "\\|"),
                t.limit_pct,
                t.value_pct,
                if t.met { "met" } else { "missed" }
            );
        }
        if let Some(note) = self.unstable_note() {
            let _ = writeln!(s, "\n**{note}.**");
        }
        for note in &self.notes {
            let _ = writeln!(s, "\nNote: {note}.");
        }
        if !plots.is_empty() {
            s.push_str("\n## Plots\n\n");
            for p in plots.iter().filter(|p| p.extension().is_some_and(|e| e == "svg")) {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let _ = writeln!(s, "![{name}](../plots/{name})\n");
            }
        }
        let split = self.points.iter().filter_map(|p| Some((p, p.split.as_ref()?))).collect::<Vec<_>>();
        if !split.is_empty() {
            s.push_str(&split_intro(&split));
            for (p, c) in split {
                let requests = c
                    .requests
                    .iter()
                    .map(|r| r.iter().map(u64::to_string).collect::<Vec<_>>().join("+"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let _ = writeln!(
                    s,
                    "| {} {} | {} | {requests} | {:.1} / {:.1} vs {:.1} | {:+.1}% / {:+.1}%{} | {:.1} / {:.1} vs {:.1} | {:+.1}% / {:+.1}%{} |",
                    p.suite,
                    p.label(),
                    c.users_label(),
                    p.throughput_rps.predicted,
                    c.throughput_rps.predicted,
                    c.throughput_rps.measured,
                    p.throughput_rps.error_pct,
                    c.throughput_rps.error_pct,
                    if c.throughput_rps.agrees { " ~" } else { "" },
                    p.p95_ms.predicted,
                    c.p95_ms.predicted,
                    c.p95_ms.measured,
                    p.p95_ms.error_pct,
                    c.p95_ms.error_pct,
                    if c.p95_ms.agrees { " ~" } else { "" },
                );
            }
            for (p, c) in self.points.iter().filter_map(|p| Some((p, p.split.as_ref()?))) {
                if let Some(h) = &c.hash {
                    let _ = writeln!(
                        s,
                        "\n{} {}: {}.",
                        p.suite,
                        p.label(),
                        h.describe(c.throughput_rps.measured)
                    );
                }
            }
        }
        s.push_str(&self.stages_markdown());
        s.push_str(LEFT_OUT);
        let _ = write!(
            s,
            "\n## Every point\n\nPredicted ± 95% CI (simulator), measured [95% CI] (real server), error = (predicted − measured) / measured; `~` after an error: the two intervals overlap (the difference is within the runs' noise). `*`: saturated (predicted throughput ≥ 90% of the capacity bound, or a resource ≥ 90% busy); `!`: unstable (offered load ≥ the capacity bound: the queue grows through the trace, on both sides); `s`: stolen (a virtual machine's host stole over {:.0}% of the CPUs' ready time while it was measured, even measured again: left out of the summary and the targets).\n\n",
            STEAL_LIMIT * 100.0
        );
        s.push_str("| suite | point | throughput req/s | err | p50 ms | err | p95 ms | err | p99 ms | err |\n|---|---|---|---:|---|---:|---|---:|---|---:|\n");
        for p in &self.points {
            let _ = write!(s, "| {} | {}{} |", p.suite, p.label(), p.mark());
            for (_, c) in p.metrics() {
                let _ = write!(
                    s,
                    " {:.1} ± {:.1} vs {:.1} [{:.1}, {:.1}] | {:+.1}%{} |",
                    c.predicted,
                    c.predicted_ci95,
                    c.measured,
                    c.measured_lo,
                    c.measured_hi,
                    c.error_pct,
                    if c.agrees { " ~" } else { "" }
                );
            }
            s.push('\n');
        }
        s
    }

    /// One CSV row per point: the swept parameters, then each metric's seven columns.
    pub fn csv(&self) -> String {
        let mut keys: Vec<String> = Vec::new();
        for p in &self.points {
            for (k, _) in &p.params {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        let mut s = String::from("suite,");
        for k in &keys {
            let _ = write!(s, "{k},");
        }
        s.push_str("saturated,unstable,capacity_rps,host_steal_pct");
        for m in ["throughput_rps", "p50_ms", "p95_ms", "p99_ms"] {
            for c in [
                "predicted",
                "predicted_ci95",
                "measured",
                "measured_lo",
                "measured_hi",
                "error_pct",
                "agrees",
            ] {
                let _ = write!(s, ",{m}_{c}");
            }
        }
        s.push_str(
            ",split_users,throughput_rps_predicted_split,throughput_rps_error_split_pct,\
             p95_ms_predicted_split,p95_ms_error_split_pct",
        );
        for stage in StageTimes::NAMES {
            for stat in ["mean", "p95"] {
                for c in STAGE_COLUMNS {
                    let _ = write!(s, ",stage_{stage}_{stat}_ms_{c}");
                }
            }
        }
        s.push_str(",miss_metrics,miss_stage,miss_statistic,miss_error_ms\n");
        for p in &self.points {
            let _ = write!(s, "{},", p.suite);
            for k in &keys {
                let v = p.params.iter().find(|(pk, _)| pk == k).map_or("", |(_, v)| v.as_str());
                let _ = write!(s, "{},", csv_field(v));
            }
            let _ = write!(s, "{},{},{},{}", p.saturated, p.unstable, p.capacity_rps, p.host_steal_pct);
            for (_, c) in p.metrics() {
                let _ = write!(
                    s,
                    ",{},{},{},{},{},{},{}",
                    c.predicted,
                    c.predicted_ci95,
                    c.measured,
                    c.measured_lo,
                    c.measured_hi,
                    c.error_pct,
                    c.agrees
                );
            }
            match &p.split {
                Some(c) => {
                    let _ = write!(
                        s,
                        ",{},{},{},{},{}",
                        csv_field(&c.users_label()),
                        c.throughput_rps.predicted,
                        c.throughput_rps.error_pct,
                        c.p95_ms.predicted,
                        c.p95_ms.error_pct
                    );
                }
                None => s.push_str(",,,,,"),
            }
            for stage in StageTimes::NAMES {
                let st = p.stages.iter().find(|c| c.stage == stage);
                for d in [st.map(|c| c.mean_ms), st.map(|c| c.p95_ms)] {
                    match d {
                        Some(d) => {
                            let _ = write!(
                                s,
                                ",{},{},{},{}",
                                d.predicted, d.predicted_ci95, d.measured, d.error_ms
                            );
                        }
                        None => s.push_str(&",".repeat(STAGE_COLUMNS.len())),
                    }
                }
            }
            match &p.miss {
                Some(m) => {
                    let _ =
                        write!(s, ",{},{},{},{}", csv_field(&m.metrics), m.stage, m.statistic, m.error_ms);
                }
                None => s.push_str(",,,,"),
            }
            s.push('\n');
        }
        s
    }

    /// The stages of every point: what the comparison shows, the misses by stage, and each
    /// point's stages predicted and measured.
    fn stages_markdown(&self) -> String {
        if self.points.iter().all(|p| p.stages.is_empty()) {
            return String::new();
        }
        let mut s = String::from(STAGES_INTRO);
        let missed: Vec<&ValidatedPoint> =
            self.points.iter().filter(|p| !p.used_by_fit && p.miss.is_some()).collect();
        if missed.is_empty() {
            s.push_str("No point misses its target beyond the noise.\n\n");
        } else {
            let _ = writeln!(s, "Misses per stage: {}.\n", misses_by_stage(&self.points));
            s.push_str("| suite | point | miss → stage |\n|---|---|---|\n");
            for p in missed {
                let m = p.miss.as_ref().expect("filtered");
                let _ = writeln!(s, "| {} | {}{} | {} |", p.suite, p.label(), p.mark(), miss_line(p, m));
            }
            s.push('\n');
        }
        s.push_str("| suite | point | queue | lock | held | free | loop |\n|---|---|---|---|---|---|---|\n");
        for p in self.points.iter().filter(|p| !p.stages.is_empty()) {
            let _ = write!(s, "| {} | {}{} |", p.suite, p.label(), p.mark());
            for stage in StageTimes::NAMES {
                match p.stages.iter().find(|c| c.stage == stage) {
                    Some(c) => {
                        let _ = write!(s, " {} |", cell(c));
                    }
                    None => s.push_str(" |"),
                }
            }
            s.push('\n');
        }
        s
    }

    /// Throughput and p95 charts per suite: predicted curves with CI bands, measured points
    /// with min–max bars, one color per configuration. Returns `(stem, chart)` pairs.
    pub fn charts(&self, plot_dir: &Path) -> Vec<(PathBuf, Chart)> {
        let mut suites: Vec<&str> = Vec::new();
        for p in &self.points {
            if !suites.contains(&p.suite.as_str()) {
                suites.push(&p.suite);
            }
        }
        let mut out = Vec::new();
        for suite in suites {
            let pts: Vec<&ValidatedPoint> = self.points.iter().filter(|p| p.suite == suite).collect();
            let Some(x_key) = x_axis(&pts) else { continue };
            let metrics: [Metric; 2] = [
                ("throughput", "throughput [req/s]", |p| &p.throughput_rps),
                ("p95", "p95 latency [ms]", |p| &p.p95_ms),
            ];
            for (name, y_label, get) in metrics {
                let mut groups: Vec<(String, Vec<&ValidatedPoint>)> = Vec::new();
                for p in &pts {
                    let g = p
                        .params
                        .iter()
                        .filter(|(k, _)| *k != x_key)
                        .map(|(k, v)| format!("{}={v}", short(k)))
                        .collect::<Vec<_>>()
                        .join(" ");
                    match groups.iter_mut().find(|(k, _)| *k == g) {
                        Some((_, v)) => v.push(p),
                        None => groups.push((g, vec![p])),
                    }
                }
                let xs: Vec<f64> = pts.iter().filter_map(|p| x_of(p, &x_key)).collect();
                let (lo, hi) = xs.iter().fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
                let mut chart = Chart {
                    title: format!("{suite}: {name}, predicted (band: 95% CI) vs measured (bars: 95% CI)"),
                    x_label: x_key.clone(),
                    y_label: y_label.into(),
                    log_x: lo > 0.0 && hi / lo >= 8.0,
                    series: Vec::new(),
                };
                for (color, (g, gp)) in groups.iter().enumerate() {
                    let mut gp = gp.clone();
                    gp.sort_by(|a, b| {
                        x_of(a, &x_key).unwrap_or(0.0).total_cmp(&x_of(b, &x_key).unwrap_or(0.0))
                    });
                    let label = if g.is_empty() { String::new() } else { format!("{g} ") };
                    chart.series.push(Series {
                        label: format!("{label}predicted"),
                        kind: SeriesKind::Band,
                        color,
                        points: gp
                            .iter()
                            .map(|p| {
                                let c = get(p);
                                Point::with_half_width(
                                    x_of(p, &x_key).unwrap_or(0.0),
                                    c.predicted,
                                    c.predicted_ci95,
                                )
                            })
                            .collect(),
                    });
                    chart.series.push(Series {
                        label: format!("{label}measured"),
                        kind: SeriesKind::Points,
                        color,
                        points: gp
                            .iter()
                            .map(|p| {
                                let c = get(p);
                                Point {
                                    x: x_of(p, &x_key).unwrap_or(0.0),
                                    y: c.measured,
                                    lo: c.measured_lo,
                                    hi: c.measured_hi,
                                }
                            })
                            .collect(),
                    });
                }
                out.push((plot_dir.join(format!("validation-{suite}-{name}")), chart));
            }
        }
        out
    }

    /// Writes `dir/validation.{csv,json}`, `dir/report.md` and the plots under `plot_dir`,
    /// all of them or none (see [`Staged`]); returns every path written.
    pub fn write(&self, dir: &Path, plot_dir: &Path) -> Result<Vec<PathBuf>, ValidateError> {
        let mut staged = Staged::new();
        let plots = staged.add_drawn(plot_dir, |scratch| {
            let mut drawn = Vec::new();
            for (stem, chart) in self.charts(scratch) {
                drawn.extend(chart.save(&stem)?);
            }
            Ok::<_, crate::plot::PlotError>(drawn)
        })?;
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        staged.add(&dir.join("validation.csv"), self.csv().as_bytes())?;
        staged.add(&dir.join("validation.json"), &json)?;
        staged.add(&dir.join("report.md"), self.markdown(&plots).as_bytes())?;
        if let Some(m) = &self.measurements {
            staged.add(&dir.join("measurements.json"), &serde_json::to_vec(m).unwrap_or_default())?;
        }
        Ok(staged.commit()?)
    }
}

/// The columns of each stage's statistic in the CSV: `stage_{stage}_{mean|p95}_ms_{column}`.
const STAGE_COLUMNS: [&str; 4] = ["predicted", "predicted_ci95", "measured", "error"];

/// The stages section's opening.
const STAGES_INTRO: &str = "
## Stages

Where a request's time goes, predicted and measured: the simulator's stage times against
the server's `Server-Timing` header on every reply, over the measured requests — `queue`
(before the handler: a pool thread, the loop's turn in `async-blocking`, a batch to join),
`lock` (waiting for it), `held` and `free` (working with the lock and without it, the
loop's work included) and `loop` (the event loop's work, part of `held` + `free`). Neither
side counts the time a request waits unread while its loop is busy, the loop's turn to
write the reply, or the network. The server's `loop` times only the loop work the scenario
emulates (`cost.loop_*`): its own parsing and writing, which the calibration measures and
the simulator runs as loop work, are in none of its stages, so the predicted `loop` and
`free` hold them and the measured do not. A point *misses* its target when its throughput or p95
error passes the target's limit and the two 95% intervals do not overlap; it is put down
to the stage whose mean (a throughput miss) or p95 (a p95 miss) differs most in ms,
predicted − measured, of the four that add up to the server's time (`loop` is a part of
`held` + `free`). Cells: mean predicted/measured · p95 predicted/measured (ms).

";

/// `v` as one CSV field: quoted (its quotes doubled) when it holds a comma, a quote or a
/// line break.
pub(super) fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_owned() }
}

fn x_of(p: &ValidatedPoint, key: &str) -> Option<f64> {
    p.params.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse().ok())
}

/// One plotted metric: file-name stem, axis label and accessor.
type Metric = (&'static str, &'static str, fn(&ValidatedPoint) -> &Compared);

/// The numeric axis with the most distinct values.
fn x_axis(points: &[&ValidatedPoint]) -> Option<String> {
    let first = points.first()?;
    first
        .params
        .iter()
        .map(|(k, _)| k)
        .filter(|k| points.iter().all(|p| x_of(p, k).is_some()))
        .max_by_key(|k| {
            let mut v: Vec<u64> = points.iter().filter_map(|p| x_of(p, k)).map(f64::to_bits).collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::super::committed;

    #[test]
    fn a_verdict_resting_on_an_unstable_calibration_says_so() {
        let mut v = committed();
        v.calibration_unstable.clear();
        assert!(!v.table().contains("UNSTABLE CALIBRATION"));
        assert!(!v.markdown(&[]).contains("UNSTABLE CALIBRATION"));
        v.calibration_unstable = vec!["wake_us".into(), "handoff_us".into()];
        for text in [v.table(), v.markdown(&[])] {
            assert!(
                text.contains("UNSTABLE CALIBRATION: the rounds of wake_us, handoff_us disagreed"),
                "{text}"
            );
        }
        // A note (a target validation with no held-out point) is printed the same ways.
        v.notes = vec![super::super::target::NO_HELD_OUT.into()];
        for text in [v.table(), v.markdown(&[])] {
            assert!(text.contains("no target judged: every point is one the calibration measured"), "{text}");
        }
        // And the JSON carries it for whoever reads the verdict there.
        let json = serde_json::to_value(&v).expect("serializes");
        assert_eq!(json["calibration_unstable"][1], "handoff_us");
    }
}
