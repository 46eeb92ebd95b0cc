//! Example: `--workers N` buys throughput with memory, until the cores run out.
//!
//! 32 closed-loop users against `models/validate.toml` (2 cores, `sync` handler, 8 threads,
//! the GIL) with `system.workers` = 1, 2, 3, 4, predicted and measured. Each worker is a
//! process with its own GIL and its own copy of the weights: one worker is bound by its
//! GIL, a second one lets the other core work, and beyond that the two cores bind. Memory
//! is predicted as `workers × system.worker_memory_mb` and measured as the resident memory
//! (RSS) of every worker process. The simulator spreads users over workers by `hash`, as
//! SO_REUSEPORT does on the real server.
//!
//! The example checks that memory grows about linearly with workers (each worker's RSS
//! about the same), that throughput grows from one worker to two and then stays flat once
//! the cores bind, in both backends, and that predicted throughput is within 25% of the
//! measurement.
//!
//! Run: `cargo build --release && cargo run --release --example workers_memory`. The server is
//! the `servesim` binary, which `cargo run --example` does not build. About 20 s on a quiet
//! 2-core machine; before each measured point it waits (2 minutes at most in all) while other
//! processes keep the CPUs busy, since a build beside the server takes a core from it. On a
//! shared machine, wrap it in `flock /tmp/servesim-measure.lock …`. Writes
//! `plots/workers-throughput.{png,svg}` and `plots/workers-memory.{png,svg}`.

use servesim::experiment::{MeasureOptions, MeasureReport, measure};
use servesim::plot::{Chart, Point, Series, SeriesKind};
use servesim::scenario::{Override, Scenario};
use servesim::sim::{self, Bottleneck, SimReport};
use std::path::Path;

mod common;
use common::{QUIET_BUDGET, Quiet, bound_predicted_measured, calibration, root};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const WORKERS: std::ops::RangeInclusive<u32> = 1..=4;
const USERS: u32 = 32;
/// Measured requests per repeat, and repeats per point.
const REQUESTS: u64 = 150;
const REPEATS: u32 = 2;
/// Largest |predicted − measured| / measured accepted for throughput.
const AGREEMENT: f64 = 0.25;
/// How far a worker's RSS may be from one lone worker's and still count as "the same".
const SAME_RSS: f64 = 0.25;
/// How much a second worker must add to one worker's throughput.
const RISE: f64 = 1.15;
/// How far throughput may wander once the cores bind and still count as flat.
const PLATEAU: f64 = 0.12;

fn scenario(base: &Path, cal: &Path, workers: u32, extra: &[String]) -> Result<Scenario> {
    let mut sets = vec![
        "worker.handler=sync".to_string(),
        "worker.lock=fair-gil".into(),
        "system.balancer=hash".into(),
        format!("system.workers={workers}"),
        format!("clients.users={USERS}"),
    ];
    sets.extend_from_slice(extra);
    let mut sets: Vec<Override> = sets.iter().map(|s| s.parse()).collect::<std::result::Result<_, _>>()?;
    let path = toml::Value::String(cal.display().to_string());
    sets.push(Override { path: "cost.calibration".into(), value: path });
    Ok(Scenario::load(base, &sets)?)
}

/// One worker count: the prediction, its memory, and each measured repeat.
struct Row {
    workers: u32,
    predicted: SimReport,
    predicted_mb: f64,
    measured: Vec<MeasureReport>,
}

impl Row {
    fn x(&self) -> f64 {
        f64::from(self.workers)
    }

    fn mean(&self, f: impl Fn(&MeasureReport) -> f64) -> f64 {
        self.measured.iter().map(f).sum::<f64>() / self.measured.len().max(1) as f64
    }

    fn spread(&self, f: impl Fn(&MeasureReport) -> f64) -> Point {
        let v: Vec<f64> = self.measured.iter().map(f).collect();
        let (lo, hi) = v.iter().fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
        Point { x: self.x(), y: v.iter().sum::<f64>() / v.len().max(1) as f64, lo, hi }
    }

    fn throughput(&self) -> f64 {
        self.mean(|m| m.throughput_rps)
    }

    fn memory_mb(&self) -> f64 {
        self.mean(|m| m.memory_mb)
    }

    /// Every worker's RSS over every repeat (MB).
    fn worker_rss_mb(&self) -> Vec<f64> {
        self.measured.iter().flat_map(|m| m.workers.iter().map(|w| w.rss_kb as f64 / 1024.0)).collect()
    }
}

fn run(base: &Path, cal: &Path, quiet: &mut Quiet) -> Result<Vec<Row>> {
    let sim_run = ["run.requests=4000".to_string(), format!("run.warmup_requests={}", 200 + 4 * USERS)];
    let meas_run = [format!("run.requests={REQUESTS}"), format!("run.warmup_requests={}", 20 + 2 * USERS)];
    let mut rows = Vec::new();
    for workers in WORKERS {
        let sc = scenario(base, cal, workers, &sim_run)?;
        let predicted = sim::simulate(&sc)?;
        let predicted_mb = f64::from(workers) * sc.system.worker_memory_mb;
        let sc = scenario(base, cal, workers, &meas_run)?;
        let mut measured = Vec::new();
        for r in 0..REPEATS {
            eprintln!("measuring {workers} worker(s) (repeat {})", r + 1);
            let mut sc = sc.clone();
            sc.run.seed = sc.run.seed.wrapping_add(u64::from(r));
            quiet.wait();
            let m = measure(&sc, &MeasureOptions::default())?;
            assert_eq!(m.workers.len(), workers as usize, "the server should run {workers} worker processes");
            measured.push(m);
        }
        rows.push(Row { workers, predicted, predicted_mb, measured });
    }
    Ok(rows)
}

fn print_table(rows: &[Row]) {
    println!(
        "{:>7} {:>11} {:>15} {:>10} {:>8} {:>9} {:>9} {:>10} {:>10} {:>22}",
        "workers",
        "bottleneck",
        "pred req/s",
        "meas req/s",
        "error",
        "p95 pred",
        "p95 meas",
        "pred MB",
        "meas MB",
        "RSS per worker MB"
    );
    for r in rows {
        let (p, x) = (&r.predicted, r.throughput());
        let rss: Vec<String> =
            r.measured[0].workers.iter().map(|w| format!("{:.1}", w.rss_kb as f64 / 1024.0)).collect();
        println!(
            "{:>7} {:>11} {:>15} {:>10.1} {:>7.1}% {:>9.1} {:>9.1} {:>10.1} {:>10.1} {:>22}",
            r.workers,
            format!("{:?}", p.stability.bottleneck).to_lowercase(),
            format!("{:.1} ± {:.1}", p.figures.throughput_rps, p.ci95.throughput_rps),
            x,
            100.0 * (p.figures.throughput_rps - x) / x,
            p.figures.latency_ms.p95,
            r.mean(|m| m.latency_ms.p95),
            r.predicted_mb,
            r.memory_mb(),
            rss.join(" "),
        );
    }
}

fn charts(rows: &[Row]) -> [(&'static str, Chart); 2] {
    let throughput = Chart {
        title: format!("Workers on 2 cores, {USERS} users, sync + GIL: throughput"),
        x_label: "system.workers".into(),
        y_label: "throughput [req/s]".into(),
        log_x: false,
        series: bound_predicted_measured(
            "capacity bound",
            rows.iter()
                .map(|r| Point::with_half_width(r.x(), r.predicted.stability.capacity_rps, 0.0))
                .collect(),
            rows.iter()
                .map(|r| {
                    let f = &r.predicted;
                    Point::with_half_width(r.x(), f.figures.throughput_rps, f.ci95.throughput_rps)
                })
                .collect(),
            rows.iter().map(|r| r.spread(|m| m.throughput_rps)).collect(),
        ),
    };
    let memory = Chart {
        title: "Workers: resident memory, every worker a copy of the weights".into(),
        x_label: "system.workers".into(),
        y_label: "memory [MB]".into(),
        log_x: false,
        series: vec![
            Series {
                label: "predicted: workers × system.worker_memory_mb".into(),
                kind: SeriesKind::Band,
                color: 0,
                points: rows.iter().map(|r| Point::with_half_width(r.x(), r.predicted_mb, 0.0)).collect(),
            },
            Series {
                label: "measured: RSS of every worker".into(),
                kind: SeriesKind::Points,
                color: 1,
                points: rows.iter().map(|r| r.spread(|m| m.memory_mb)).collect(),
            },
        ],
    };
    [("workers-throughput", throughput), ("workers-memory", memory)]
}

/// Throughput in one backend: up from one worker to two, then flat while the cores bind.
fn check_throughput(rows: &[Row], backend: &str, get: fn(&Row) -> f64) {
    let x: Vec<f64> = rows.iter().map(get).collect();
    assert!(
        x[1] >= RISE * x[0],
        "{backend}: 2 workers give {:.1} req/s, not {RISE}× one worker's {:.1}",
        x[1],
        x[0]
    );
    let (lo, hi) = x[1..].iter().fold((f64::INFINITY, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(
        hi / lo - 1.0 <= PLATEAU,
        "{backend}: once the cores bind throughput should be flat, got {lo:.1}..{hi:.1}"
    );
}

fn check_memory(rows: &[Row]) {
    let one = rows[0].memory_mb();
    for r in rows {
        for rss in r.worker_rss_mb() {
            assert!(
                (rss / one - 1.0).abs() <= SAME_RSS,
                "{} workers: a worker holds {rss:.1} MB, not about one lone worker's {one:.1} MB",
                r.workers
            );
        }
    }
    let last = &rows[rows.len() - 1];
    let ratio = last.memory_mb() / one;
    let n = f64::from(last.workers);
    assert!(
        (ratio / n - 1.0).abs() <= SAME_RSS,
        "{} workers use {ratio:.2}× the memory of one, not about {n}×",
        last.workers
    );
}

fn main() -> Result<()> {
    let base = root().join("models/validate.toml");
    let (cal, _) = calibration(&base)?;
    let t0 = std::time::Instant::now();
    let rows = run(&base, &cal, &mut Quiet(QUIET_BUDGET))?;
    println!("Workers on 2 cores, {USERS} users, sync handler, 8 threads, GIL: predicted vs measured\n");
    print_table(&rows);
    let mut files = Vec::new();
    for (stem, chart) in charts(&rows) {
        files.extend(chart.save(&root().join("plots").join(stem))?);
    }

    check_memory(&rows);
    check_throughput(&rows, "predicted", |r| r.predicted.figures.throughput_rps);
    check_throughput(&rows, "measured", Row::throughput);
    assert_eq!(
        rows[0].predicted.stability.bottleneck,
        Bottleneck::Lock,
        "one worker should be bound by its GIL"
    );
    for r in &rows[1..] {
        assert_eq!(
            r.predicted.stability.bottleneck,
            Bottleneck::Cores,
            "{} workers should be bound by the cores",
            r.workers
        );
    }
    for r in &rows {
        let (p, m) = (r.predicted.figures.throughput_rps, r.throughput());
        assert!(
            ((p - m) / m).abs() <= AGREEMENT,
            "{} workers: predicted {p:.1} vs measured {m:.1} req/s ({:+.1}%)",
            r.workers,
            100.0 * (p - m) / m
        );
    }
    let (one, last) = (&rows[0], &rows[rows.len() - 1]);
    println!(
        "\nEach worker costs about {:.1} MB of RSS (the scenario assumes {:.1} MB; {:.1} MB for {} workers); \
         throughput goes from {:.1} to {:.1} req/s measured ({:.1} to {:.1} predicted): a second GIL helps, more \
         processes than cores do not.",
        one.memory_mb(),
        one.predicted_mb,
        last.memory_mb(),
        last.workers,
        one.throughput(),
        last.throughput(),
        one.predicted.figures.throughput_rps,
        last.predicted.figures.throughput_rps,
    );
    println!("Wall time {:.0} s.", t0.elapsed().as_secs_f64());
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
