//! `servesim calibrate`.

use super::{bar, track};
use crate::cli::common::{check_out_file, load_scenario};
use anyhow::Context;
use clap::Args;
use servesim::experiment::target::{FitOptions, TargetCalibration, calibrate_target, costs_of};
use servesim::experiment::{CalibrateOptions, calibrate};
use servesim::scenario::{Override, Scenario};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Measure the real server's own costs on this machine and write a calibration file.
///
/// Starts the real server on the scenario's CPUs with one thread and the GIL (so every lock
/// operation is paid) and the scenario's emulated work, sends the scenario's request from one
/// client, and splits each response's time, the nominal emulated work taken out: the model's
/// matmuls (lock-free per token), the rest of the model (lock-held per token), the event
/// loop's CPU (HTTP, JSON, dispatch) and the rest of the round trip (client, loopback,
/// wake-ups: `rtt_ms`). Then, for a fair lock, times the CPU of a hand-off on a busy core
/// (`switch_us`: two threads on one CPU passing a turn back and forth through park and
/// unpark, as the lock's waiters park) and fits the rest of a hand-off (`handoff_us`, the
/// wake-up of an idle core) to a contended run of the real server; times the batched step
/// at several batch sizes, and the OS's wake-up costs that CPython's GIL meets: a parked
/// thread's wake-up signalled by a thread that goes on computing, onto an idle core
/// (`wake_us`) and with every core busy (`wake_busy_us`), what the signal costs its
/// signaller (`signal_us`), the CPU of a wake-up in vain (`vain_wake_us`) and the wake-up
/// of a thread blocked on a mutex held briefly (`mutex_wake_us`), in rounds whose spread it
/// reports. Every cost is kept as its samples. Scenarios use it with
/// `cost.calibration = "PATH"` (or `--set`).
///
/// With `--target FILE`, calibrates a service of your own from outside instead: FILE is a
/// scenario with a `[target]` section (the URL, the body, and how to start the service)
/// whose `[system]` and `[worker]` describe the service's structure (handler, threads,
/// workers, lock, `cost.release_points`). It measures one client (service-time samples,
/// the health URL's round trip, any `Server-Timing` stages), then a short closed-loop ramp
/// (1, 2, c, c + 1, 2c, 4c users for c = system.cores; and 2 and 4 users on one core when
/// the target takes `{cpus}` and the lock is a GIL), then fits the simulator to the
/// ramp: the share of the work held under the lock, the event loop's share, and (for
/// `fair-gil`) the lock's hand-off cost, with 95% CIs and the residuals; for `gil` the
/// wake-up costs are this machine's, measured as above, not fitted. Writes the calibration
/// (JSON) and a copy of the scenario with the fitted costs, for what-ifs and `validate
/// --target`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  servesim calibrate models/validate.toml --out validation/calibration.json\n  \
    servesim simulate models/validate.toml --set cost.calibration='\"../validation/calibration.json\"'\n  \
    servesim calibrate --target examples/fastapi/scenario.toml\n  \
    servesim simulate examples/fastapi/scenario.calibrated.toml --set worker.threads=4"
)]
pub struct CalibrateArgs {
    /// Scenario file (TOML), e.g. models/validate.toml.
    #[arg(required_unless_present = "target", conflicts_with = "target")]
    file: Option<PathBuf>,

    /// Calibrate the service of this scenario's `[target]` section from outside.
    #[arg(long, value_name = "FILE")]
    target: Option<PathBuf>,

    /// Override any field: --set worker.threads=8 --set worker.lock=gil.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<Override>,

    /// Where to write the calibration (JSON). By default, validation/calibration.json, and
    /// with --target FILE, FILE's name with `.calibration.json` beside it.
    #[arg(long)]
    out: Option<PathBuf>,

    /// --target: where to write the scenario with the fitted costs. By default, FILE's name
    /// with `.calibrated.toml` beside it (so its relative paths still hold).
    #[arg(long, value_name = "PATH")]
    scenario_out: Option<PathBuf>,

    /// --target: seconds of measurement (one client and the ramp); the fit comes on top.
    #[arg(long, default_value_t = FitOptions::default().budget_s)]
    budget_s: f64,

    /// --target: users at each step of the ramp, e.g. 1,2,4,8 (default: 1, 2, c, c + 1, 2c, 4c).
    #[arg(long, value_delimiter = ',')]
    ramp: Vec<u32>,

    /// --target: ignore the responses' Server-Timing headers (fit every share).
    #[arg(long)]
    no_server_timing: bool,

    /// Requests measured from one client.
    #[arg(long, default_value_t = 300)]
    requests: u32,

    /// The Mini-GPT directory (default: models/mini-gpt).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
}

/// Runs `servesim calibrate`.
pub fn run(args: CalibrateArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.target {
        return run_target(file, &args);
    }
    let file = args.file.as_deref().context("give a scenario FILE, or --target FILE")?;
    let sc = load_scenario(file, &args.set)?;
    let opts = CalibrateOptions {
        requests: args.requests,
        model_dir: args.model.clone(),
        ..CalibrateOptions::default()
    };
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("validation/calibration.json"));
    check_out_file("--out", &out)?;
    let cal = calibrate(&sc, &opts, |stage| eprintln!("calibrate: {stage}…"))?;
    write(&cal, &out)?;
    print_summary(&cal, &out);
    Ok(())
}

/// `FILE`'s name with `suffix` in place of its extension, beside it.
pub fn beside(file: &Path, suffix: &str) -> PathBuf {
    let stem = file.file_stem().map_or_else(|| "target".into(), |s| s.to_string_lossy().into_owned());
    file.with_file_name(format!("{stem}{suffix}"))
}

fn run_target(file: &Path, args: &CalibrateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.budget_s.is_finite() && args.budget_s >= 5.0,
        "--budget-s must be at least 5 seconds, got {}",
        args.budget_s
    );
    anyhow::ensure!(args.ramp.iter().all(|&u| u >= 1), "--ramp: every step needs at least 1 user");
    let sc = load_scenario(file, &args.set)?;
    anyhow::ensure!(
        sc.target.is_some(),
        "{} has no [target] section: add one with url (and start, to let servesim run the service)",
        file.display()
    );
    let out = args.out.clone().unwrap_or_else(|| beside(file, ".calibration.json"));
    let scenario_out = args.scenario_out.clone().unwrap_or_else(|| beside(file, ".calibrated.toml"));
    check_out_file("--out", &out)?;
    check_out_file("--scenario-out", &scenario_out)?;
    let opts = FitOptions {
        budget_s: args.budget_s,
        use_server_timing: !args.no_server_timing,
        ramp: args.ramp.clone(),
        ..FitOptions::default()
    };
    let cal = calibrate_target_with_bar(&sc, &opts)?;
    write_target_files(file, &sc, &args.set, &cal, &out, &scenario_out)?;
    print!("{}", target_summary(&cal));
    println!("\nwrote {} and {}", out.display(), scenario_out.display());
    println!(
        "next: servesim validate --target {}   (or simulate it with --set for what-ifs)",
        scenario_out.display()
    );
    Ok(())
}

/// Runs the target's calibration with a progress bar on stderr.
pub fn calibrate_target_with_bar(sc: &Scenario, opts: &FitOptions) -> anyhow::Result<TargetCalibration> {
    let bar = bar("calibrate {bar:30} {pos}/{len} stages, {elapsed} {msg}");
    let cal = calibrate_target(sc, opts, track(&bar));
    bar.finish_and_clear();
    Ok(cal?)
}

/// Writes the target calibration to `cal_path` and the calibrated scenario to `dest`, both
/// or neither (see [`servesim::experiment::report::write_all`]).
pub fn write_target_files(
    file: &Path,
    sc: &Scenario,
    set: &[Override],
    cal: &TargetCalibration,
    cal_path: &Path,
    dest: &Path,
) -> anyhow::Result<()> {
    let toml = calibrated_scenario(file, sc, set, cal, cal_path, dest)?;
    let json = serde_json::to_vec_pretty(cal)?;
    servesim::experiment::report::write_all(&[
        (cal_path.to_owned(), json),
        (dest.to_owned(), toml.into_bytes()),
    ])?;
    Ok(())
}

/// The scenario file's own TOML with the fitted costs set and `target.calibration` naming
/// the calibration, relative to where the new file goes.
fn calibrated_scenario(
    file: &Path,
    sc: &Scenario,
    set: &[Override],
    cal: &TargetCalibration,
    cal_path: &Path,
    dest: &Path,
) -> anyhow::Result<String> {
    let fitted = servesim::experiment::target::apply(sc, &costs_of(cal));
    let text = servesim::input::read_text(file)
        .with_context(|| format!("cannot read scenario {}", file.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", file.display()))?;
    for o in set {
        let keys: Vec<&str> = o.path.split('.').collect();
        let mut t = &mut table;
        for k in &keys[..keys.len() - 1] {
            t = t
                .entry(k.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()))
                .as_table_mut()
                .context("a --set path crosses a value")?;
        }
        t.insert(keys[keys.len() - 1].to_owned(), o.value.clone());
    }
    let cost = toml::Table::try_from(&fitted.cost)?;
    let slot = table.entry("cost").or_insert_with(|| toml::Value::Table(Default::default()));
    if let Some(c) = slot.as_table_mut() {
        // Every cost the fit sets (and the scenario's own where it sets none), so that the
        // file simulates what the calibration predicted.
        for (key, v) in cost {
            c.insert(key, v);
        }
        c.remove("calibration");
    }
    if let Some(ms) = servesim::experiment::target::slice_of(cal) {
        let slot = table.entry("system").or_insert_with(|| toml::Value::Table(Default::default()));
        if let Some(t) = slot.as_table_mut() {
            t.insert("slice_ms".into(), toml::Value::Float(ms));
        }
    }
    let rel = relative(cal_path, dest.parent().unwrap_or(Path::new(".")));
    if let Some(t) = table.get_mut("target").and_then(|t| t.as_table_mut()) {
        t.insert("calibration".into(), toml::Value::String(rel.display().to_string()));
        if dest.parent() != file.parent() && !t.contains_key("cwd") {
            let cwd = std::path::absolute(file.parent().unwrap_or(Path::new(".")))?;
            t.insert(
                "cwd".into(),
                toml::Value::String(
                    relative(&cwd, &std::path::absolute(dest.parent().unwrap_or(Path::new(".")))?)
                        .display()
                        .to_string(),
                ),
            );
        }
    }
    let mut head = String::new();
    let _ = writeln!(
        head,
        "# {} with its costs calibrated from outside by `servesim calibrate --target`",
        file.display()
    );
    let _ = writeln!(
        head,
        "# on {} ({}): see {} for the ramp, the fit and its CIs.",
        cal.machine.date,
        cal.machine.cpu_model,
        rel.display()
    );
    let _ =
        writeln!(head, "# Edit the knobs for what-ifs: servesim simulate THIS_FILE --set worker.threads=8\n");
    Ok(head + &toml::to_string_pretty(&table)?)
}

/// `path` relative to directory `from` (both made absolute), with `..` where needed.
fn relative(path: &Path, from: &Path) -> PathBuf {
    let (Ok(p), Ok(f)) = (std::path::absolute(path), std::path::absolute(from)) else {
        return path.to_owned();
    };
    let (pc, fc): (Vec<_>, Vec<_>) = (p.components().collect(), f.components().collect());
    let common = pc.iter().zip(&fc).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..fc.len() {
        out.push("..");
    }
    for c in &pc[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// The calibration as text: the ramp measured and predicted, the costs with their CIs.
pub fn target_summary(cal: &TargetCalibration) -> String {
    let mut s = String::new();
    let o = &cal.one_client;
    let _ = writeln!(
        s,
        "target {} — calibrated from outside ({} on {})",
        cal.url, cal.machine.date, cal.machine.cpu_model
    );
    let _ = writeln!(
        s,
        "one client: {} requests, mean {:.3} ms (cv {:.2}); health round trip {:.3} ms",
        o.requests, o.mean_ms, o.cv, o.rtt_ms
    );
    if let Some(st) = &o.stages {
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
        let _ = writeln!(
            s,
            "Server-Timing (ms): queue {} lock {} held {} free {} loop {}",
            f(st.queue),
            f(st.lock),
            f(st.held),
            f(st.free),
            f(st.event_loop)
        );
    }
    let _ = writeln!(s, "\n{:>6} {:>6} {:>28} {:>28}", "users", "cores", "throughput req/s", "p95 ms");
    let _ = writeln!(s, "{:>6} {:>6} {:>28} {:>28}", "", "", "meas / fit / err", "meas / fit / err");
    for r in &cal.ramp {
        let _ = writeln!(
            s,
            "{:>6} {:>6} {:>28} {:>28}",
            r.users,
            r.cores,
            format!(
                "{:.1} / {:.1} / {:+.1}%",
                r.throughput_rps, r.predicted_throughput_rps, r.throughput_error_pct
            ),
            format!("{:.2} / {:.2} / {:+.1}%", r.p95_ms, r.predicted_p95_ms, r.p95_error_pct)
        );
    }
    let _ = writeln!(
        s,
        "residual rms {:.3} (log units ≈ relative error), {} simulations, {:.0} s\n",
        cal.residual_rms, cal.evaluations, cal.wall_s
    );
    for p in &cal.params {
        let ci = match (p.ci95_lo, p.ci95_hi) {
            (Some(lo), Some(hi)) => format!("95% CI {lo:.3} … {hi:.3}"),
            _ if p.source == "fit" => "no CI: the ramp cannot tell it".into(),
            _ => String::new(),
        };
        let _ = writeln!(s, "  {:<18} {:>10.3} {:<6} {:<36} {}", p.name, p.value, p.unit, ci, p.source);
    }
    for n in &cal.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

/// Writes a calibration as pretty JSON, creating the directory.
pub fn write(cal: &servesim::scenario::Calibration, out: &std::path::Path) -> anyhow::Result<()> {
    Ok(servesim::experiment::write_calibration(cal, out)?)
}

/// Where the calibration went, and one line per component.
pub fn print_summary(cal: &servesim::scenario::Calibration, out: &std::path::Path) {
    println!("calibration written to {} ({} on {})", out.display(), cal.machine.date, cal.machine.cpu_model);
    print!("{}", cal.summary());
}
