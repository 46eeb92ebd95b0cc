//! `servesim validate`.

use super::calibrate::{print_summary, write};
use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use servesim::experiment::{
    Axis, CalibrateOptions, MeasureOptions, Suite, ValidateOptions, calibrate, default_suites, validate,
};
use servesim::scenario::{Override, Scenario};
use std::path::PathBuf;

/// Check the simulator's predictions against the real server, point by point.
///
/// For every point of the sweep (the product of the `--sweep` axes): simulate it (with 95%
/// CIs over replications), measure it on the real server (with 95% CIs from batch means
/// and order statistics), and compare throughput, p50, p95 and p99. An open-loop point is
/// played as the same trace of send times on both sides. Prints the table and a summary (median and max |error| per metric,
/// against the targets: median ≤ 3% for throughput, ≤ 8% for p95, max ≤ 10% for
/// throughput below saturation), and writes OUT/validation.csv, OUT/validation.json,
/// OUT/report.md and PLOTS/validation-*.png/.svg.
///
/// Every point uses one calibration of this machine (`--calibration`, or a fresh one taken
/// first and written to OUT/calibration.json): nothing is fitted per point.
///
/// With no FILE, runs the default suite: the three handlers × lock none/gil × users 1…64
/// and workers 1 vs 2 (models/validate.toml), and batching none/static/continuous × two
/// output-length mixes × offered load (models/validate-batching.toml) — about three minutes
/// on 2 cores, calibration included.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  servesim validate\n  \
    servesim validate models/validate.toml --sweep clients.users=1,4,16 --sweep worker.lock=none,gil\n  \
    servesim validate models/validate.toml --sweep worker.threads=1,2,4,8 --calibration validation/calibration.json --json")]
pub struct ValidateArgs {
    /// Scenario file (TOML); none: the default suite.
    file: Option<PathBuf>,

    /// A swept parameter, PATH=V1,V2,… (repeat for a grid), e.g. clients.users=1,2,4,8.
    #[arg(long, value_name = "PATH=VALUES", requires = "file")]
    sweep: Vec<Axis>,

    /// Override any field of the scenario for every point.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<Override>,

    /// Calibration file to use instead of calibrating first.
    #[arg(long, value_name = "PATH")]
    calibration: Option<PathBuf>,

    /// Directory for the CSV, JSON, report and calibration.
    #[arg(long, default_value = "validation")]
    out: PathBuf,

    /// Directory for the plots.
    #[arg(long, default_value = "plots")]
    plots: PathBuf,

    /// Measured requests per repeat of each point.
    #[arg(long, default_value_t = 200)]
    requests: u64,

    /// Passes over the points: each measures every point once more (and, for open loops,
    /// with new arrivals), narrowing the measured CIs at the cost of time.
    #[arg(long, default_value_t = 1)]
    repeats: u32,

    /// Print the whole validation as one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

/// Runs `servesim validate`.
pub fn run(args: ValidateArgs) -> anyhow::Result<()> {
    let suites = match &args.file {
        None => default_suites(std::path::Path::new("models")),
        Some(file) => {
            anyhow::ensure!(!args.sweep.is_empty(), "give at least one --sweep PATH=V1,V2,… with a FILE");
            vec![Suite {
                name: stem(file),
                file: file.clone(),
                fixed: args.set.clone(),
                axes: args.sweep.clone(),
            }]
        }
    };
    if args.file.is_none() {
        for s in &suites {
            anyhow::ensure!(
                s.file.exists(),
                "{} is missing: run the default suite from the servesim checkout",
                s.file.display()
            );
        }
    }
    let calibration = match &args.calibration {
        Some(p) => p.clone(),
        None => {
            let sc = Scenario::load(&suites[0].file, &suites[0].fixed)
                .with_context(|| format!("in scenario {}", suites[0].file.display()))?;
            let cal = calibrate(&sc, &CalibrateOptions::default(), |stage| eprintln!("calibrate: {stage}…"))?;
            let path = args.out.join("calibration.json");
            write(&cal, &path)?;
            if !args.json {
                print_summary(&cal, &path);
            }
            path
        }
    };
    let opts = ValidateOptions {
        measure: MeasureOptions { max_wall_s: 120.0, ..MeasureOptions::default() },
        calibration: Some(calibration),
        requests: args.requests,
        repeats: args.repeats,
        ..ValidateOptions::default()
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} points, {elapsed} (ETA {eta}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let v = validate(&suites, &opts, |done, total, label| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(label.to_owned());
    })?;
    bar.finish_and_clear();
    let written = v.write(&args.out, &args.plots)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", v.table());
        println!(
            "\nwrote {}",
            written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

fn stem(file: &std::path::Path) -> String {
    file.file_stem().map_or_else(|| "validation".into(), |s| s.to_string_lossy().into_owned())
}
