//! `servesim validate`.

use super::calibrate::{
    beside, calibrate_target_with_bar, print_summary, target_summary, write, write_target_files,
};
use super::{bar, track};
use crate::cli::common::check_out_dir;
use anyhow::Context;
use clap::Args;
use servesim::experiment::grid::{Grid, GridError};
use servesim::experiment::{
    Axis, CalibrateOptions, MeasureOptions, Measurements, Runs, Suite, ValidateOptions, Validation,
    calibrate, default_suites, target_axes, validate, validate_target,
};
use servesim::scenario::{Override, Scenario};
use std::path::{Path, PathBuf};

/// Check the simulator's predictions against the real server, point by point.
///
/// For every point of the sweep (the product of the `--sweep` axes): simulate it (with 95%
/// CIs over replications), measure it on the real server (with 95% CIs from batch means
/// and order statistics), and compare throughput, p50, p95 and p99 — and each stage of a
/// request (queue, lock, held, free, loop: mean and p95) with the server's Server-Timing,
/// naming for every point that misses its target the stage that differs most. An open-loop
/// point is played as the same trace of send times on both sides. Prints the table and a
/// summary (median and max |error| per metric, against the targets: median ≤ 3% for
/// throughput, ≤ 5% for p95, ≤ 8% for p99; max ≤ 10% for throughput at every point, ≤ 25%
/// for p95 below saturation), and writes OUT/validation.csv, OUT/validation.json,
/// OUT/report.md, OUT/measurements.json (every measured run, which `--from` predicts again
/// without measuring) and PLOTS/validation-*.png/.svg. Points on several workers balanced by the
/// kernel's hash are also predicted with the split of users each run had (each worker's
/// accepted connections, from its own counters) and over the hash's whole distribution of
/// splits, which parts the hash's luck from the model's error.
///
/// Every point uses one calibration of this machine (`--calibration`, or a fresh one taken
/// first and written to OUT/calibration.json): nothing is fitted per point.
///
/// With `--target FILE`, validates a service of your own: FILE is a scenario with a
/// `[target]` section. If its `target.calibration` names no calibration, the service is
/// calibrated from outside first (as `calibrate --target`). The sweep is `--sweep`, or by
/// default the handler (when the target's URL or start takes `{worker.handler}`) × users
/// 1…64 × workers 1, 2 (when it takes `{system.workers}`); the service is restarted through
/// `target.start` whenever a knob it takes changes. Points the calibration measured are
/// marked `c` and left out of the summary; the targets: throughput median |error| ≤ 10%,
/// p95 median ≤ 15%, and the predicted winning handler right at every concurrency ≥ 2.
/// Its points on several workers are predicted with `system.balancer` (servesim is not told
/// how the service picks a worker; `accept` is uvicorn's shared listening socket) and again
/// with the split of users each run had, where
/// the responses name the worker that answered them (an `x-worker-pid` header).
///
/// With no FILE, runs the default suite: the three handlers × lock none/fair-gil × users 1…64
/// and workers 1 vs 2 (models/validate.toml), and batching none/static/continuous × two
/// output-length mixes × offered load (models/validate-batching.toml) — about three minutes
/// on 2 cores, calibration included.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  servesim validate\n  \
    servesim validate models/validate.toml --sweep clients.users=1,4,16 --sweep worker.lock=none,gil\n  \
    servesim validate models/validate.toml --sweep worker.threads=1,2,4,8 --calibration validation/calibration.json --json\n  \
    servesim validate --from validation/measurements.json --set cost.handoff_us=20 --out /tmp/what-if
  servesim validate --from r1/measurements.json --from r2/measurements.json --from r3/measurements.json")]
pub struct ValidateArgs {
    /// Scenario file (TOML); none: the default suite.
    #[arg(conflicts_with = "target")]
    file: Option<PathBuf>,

    /// Validate the service of this scenario's `[target]` section (calibrated first if its
    /// target.calibration names no calibration).
    #[arg(long, value_name = "FILE")]
    target: Option<PathBuf>,

    /// A swept parameter, PATH=V1,V2,… (repeat for a grid), e.g. clients.users=1,2,4,8.
    #[arg(long, value_name = "PATH=VALUES")]
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

    /// Predict again against the measurements a run of validate kept (OUT/measurements.json
    /// of that run): no server starts and nothing is measured, so a changed scenario (`--set`,
    /// an edited file) or another version of servesim is judged on the same measurements in
    /// seconds. Give the same suites and sweeps as that run (none for the default suite, FILE
    /// with its --sweep, or --target FILE, the calibrated scenario); its runs per point and
    /// requests replace --repeats and --requests. The calibration is --calibration, else the
    /// calibration.json beside the measurements, else the one that run used.
    ///
    /// Give it once per run to judge several runs together (`--from A --from B --from C`):
    /// each run is predicted from its own calibration and judged on its own, then every point
    /// is taken over the runs (the median of its runs' own errors) and the targets are
    /// judged on those, beside each run's own verdict. Writes each run's files under
    /// OUT/run-N/ (plots under PLOTS/run-N/), and OUT/runs.csv and OUT/runs.json: every
    /// point's medians and ranges over the runs, and the targets run by run.
    #[arg(long, value_name = "FILE")]
    from: Vec<PathBuf>,

    /// Print the whole validation as one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

/// Runs `servesim validate`.
pub fn run(args: ValidateArgs) -> anyhow::Result<()> {
    if args.from.is_empty() {
        // Checked here too, before a calibration that takes minutes.
        options(&args, None, None).check()?;
    }
    // The files are written at the end: a path that cannot take them is refused now.
    check_out_dir("--out", &args.out)?;
    check_out_dir("--plots", &args.plots)?;
    if args.from.len() > 1 {
        return run_several(&args);
    }
    let v = one(&args, args.from.first().map(PathBuf::as_path))?;
    report(&v, &args.out, &args.plots, args.json)
}

/// One validation: measured now, or predicted again against the measurements of `from`.
fn one(args: &ValidateArgs, from: Option<&Path>) -> anyhow::Result<Validation> {
    if let Some(file) = &args.target {
        return one_target(file, args, from);
    }
    let suites = suites(args)?;
    if args.file.is_none() {
        for s in &suites {
            anyhow::ensure!(
                s.file.exists(),
                "{} is missing: run the default suite from the servesim checkout",
                s.file.display()
            );
        }
    }
    let saved = saved(from)?;
    let calibration = match (&args.calibration, from, &saved) {
        (Some(p), _, _) => p.clone(),
        (None, Some(file), Some(m)) => {
            // The calibration beside the measurements, else the one they were predicted with.
            let beside = file.with_file_name("calibration.json");
            let recorded = m.calibration.as_ref().map(PathBuf::from).filter(|p| p.exists());
            match (beside.exists(), recorded) {
                (true, _) => beside,
                (false, Some(p)) => p,
                (false, None) => anyhow::bail!(
                    "--from {}: no calibration.json beside it, and the one it was predicted with ({}) is \
                     gone: give a calibration (--calibration PATH)",
                    file.display(),
                    m.calibration.as_deref().unwrap_or("none recorded")
                ),
            }
        }
        _ => {
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
    let opts = options(args, Some(calibration), saved);
    let bar = bar(POINTS_BAR);
    let v = validate(&suites, &opts, track(&bar))?;
    bar.finish_and_clear();
    Ok(v)
}

/// Several runs judged together (`--from` given more than once): each predicted again and
/// written under OUT/run-N/, then judged over the runs.
fn run_several(args: &ValidateArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for (i, file) in args.from.iter().enumerate() {
        let v =
            one(args, Some(file)).with_context(|| format!("run {} (--from {})", i + 1, file.display()))?;
        let (out, plots) =
            (args.out.join(format!("run-{}", i + 1)), args.plots.join(format!("run-{}", i + 1)));
        v.write(&out, &plots)?;
        if !args.json {
            println!("run {} (--from {}), on its own:", i + 1, file.display());
            print!("{}", v.summary_text());
            println!("wrote {}\n", out.display());
        }
        runs.push(v);
    }
    let sources: Vec<String> = args.from.iter().map(|f| f.display().to_string()).collect();
    let pooled = Runs::pool(&runs, &sources, args.target.is_some())?;
    let written = pooled.write(&args.out)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&pooled)?);
    } else {
        print!("{}", pooled.table());
        print_written(&written);
    }
    Ok(())
}

/// The progress bar of a validation.
const POINTS_BAR: &str = "{bar:30} {pos}/{len} points, {elapsed} (ETA {eta}) {msg}";

/// How to validate, from the arguments; `calibration` for servesim's own server, `from` the
/// measurements of `--from`.
fn options(args: &ValidateArgs, calibration: Option<PathBuf>, from: Option<Measurements>) -> ValidateOptions {
    ValidateOptions {
        measure: MeasureOptions { max_wall_s: 120.0, ..MeasureOptions::default() },
        calibration,
        requests: args.requests,
        repeats: args.repeats,
        from,
        ..ValidateOptions::default()
    }
}

/// The measurements of `--from`, if given.
fn saved(from: Option<&Path>) -> anyhow::Result<Option<Measurements>> {
    Ok(match from {
        Some(file) => Some(Measurements::read(file)?),
        None => None,
    })
}

/// Writes the validation's files and prints it: the table, or JSON with `json`.
fn report(v: &Validation, out: &Path, plots: &Path, json: bool) -> anyhow::Result<()> {
    let written = v.write(out, plots)?;
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        print!("{}", v.table());
        print_written(&written);
    }
    Ok(())
}

/// `wrote a, b, …` after a blank line.
fn print_written(paths: &[PathBuf]) {
    println!("\nwrote {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
}

/// The suites to validate: the default ones, or FILE swept; `--set` applies to every point.
fn suites(args: &ValidateArgs) -> anyhow::Result<Vec<Suite>> {
    Ok(match &args.file {
        None => {
            anyhow::ensure!(args.sweep.is_empty(), "--sweep needs a scenario FILE (or --target FILE)");
            let mut suites = default_suites(std::path::Path::new("models"));
            for s in &mut suites {
                let grid = Grid::new(s.axes.clone())?;
                if let Err(GridError::SetAndSwept { set, axis }) = grid.check_fixed(&args.set) {
                    anyhow::bail!(
                        "--set {set}: the default suite `{}` sweeps {axis}, so its points would ignore the \
                         --set; drop it, or validate a FILE with --sweep PATH=… of your own",
                        s.name
                    );
                }
                s.fixed.extend(args.set.iter().cloned());
            }
            suites
        }
        Some(file) => {
            anyhow::ensure!(!args.sweep.is_empty(), "give at least one --sweep PATH=V1,V2,… with a FILE");
            // Checked here too, before a calibration that takes minutes.
            Grid::new(args.sweep.clone())?.check_fixed(&args.set)?;
            vec![Suite {
                name: stem(file),
                file: file.clone(),
                fixed: args.set.clone(),
                axes: args.sweep.clone(),
            }]
        }
    })
}

fn stem(file: &std::path::Path) -> String {
    file.file_stem().map_or_else(|| "validation".into(), |s| s.to_string_lossy().into_owned())
}

/// A validation of a `[target]` service: measured now, or predicted again against `from`.
fn one_target(file: &Path, args: &ValidateArgs, from: Option<&Path>) -> anyhow::Result<Validation> {
    use servesim::experiment::target::{FitOptions, TargetCalibration};
    let sc = Scenario::load(file, &args.set).with_context(|| format!("in scenario {}", file.display()))?;
    let spec = sc.target.clone().with_context(|| {
        format!("{} has no [target] section: add one (see `servesim calibrate --help`)", file.display())
    })?;
    for a in &args.sweep {
        spec.check_settable(&a.path)?;
    }
    // Checked here too, before a calibration that takes minutes.
    target_axes(&sc, &args.sweep, &args.set)?;
    let _guard = servesim::experiment::target::ServiceGuard;
    let (file, cal): (PathBuf, TargetCalibration) = match &spec.calibration {
        Some(rel) => {
            let path = sc.base_dir.join(rel);
            let text = servesim::input::read_text(&path).map_err(|e| {
                anyhow::anyhow!(
                    "target.calibration: cannot read {}: {e}; name the calibration `servesim calibrate \
                     --target` wrote",
                    path.display()
                )
            })?;
            let cal = serde_json::from_str(&text).with_context(|| {
                format!("target.calibration: {} is not a target calibration", path.display())
            })?;
            (file.to_owned(), cal)
        }
        None => {
            anyhow::ensure!(
                from.is_none(),
                "--from predicts the calibrated scenario again, and {} has no target.calibration: give the \
                 scenario calibrate --target wrote (e.g. scenario.calibrated.toml)",
                file.display()
            );
            eprintln!(
                "validate: {} has no target.calibration: calibrating the service first",
                file.display()
            );
            let cal = calibrate_target_with_bar(&sc, &FitOptions::default())?;
            let (cal_path, dest) = (beside(file, ".calibration.json"), beside(file, ".calibrated.toml"));
            write_target_files(file, &sc, &args.set, &cal, &cal_path, &dest)?;
            if !args.json {
                print!("{}", target_summary(&cal));
                println!("wrote {} and {}\n", cal_path.display(), dest.display());
            }
            (dest, cal)
        }
    };
    let opts = options(args, None, saved(from)?);
    let bar = bar(POINTS_BAR);
    let v = validate_target(&file, &args.set, &args.sweep, Some(&cal), &opts, track(&bar))?;
    bar.finish_and_clear();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ValidateArgs,
    }

    fn parse(argv: &[&str]) -> ValidateArgs {
        <Cli as clap::Parser>::try_parse_from(std::iter::once("validate").chain(argv.iter().copied()))
            .expect("parses")
            .args
    }

    #[test]
    fn set_applies_to_every_point_of_the_default_suites() {
        let args = parse(&["--set", "system.scheduler=\"slice\""]);
        let suites = suites(&args).expect("the default suites");
        assert!(suites.len() >= 2);
        for s in &suites {
            assert!(s.fixed.iter().any(|o| o.path == "system.scheduler"), "{}: {:?}", s.name, s.fixed);
        }
    }
}
