//! Example: servesim's CPython GIL, checked against CPython itself.
//!
//! `python/gil_bench.py` runs T Python threads, each sending requests back to back; a
//! request is K segments of pure-Python bytecode (the GIL held) each followed by one NumPy
//! call (the GIL released), W ms in all, a share H of it bytecode. It measures every
//! request's latency and the throughput, and — one thread alone, just before the point and
//! just after it — the point's profile: what a request's bytecode and calls cost when
//! nothing else runs, then.
//!
//! servesim predicts every point from that one-thread profile and this machine's wake-up
//! costs (`servesim calibrate` measures the same: a parked thread's wake-up latency, and the
//! CPU of a wake-up in vain), what a take of the GIL after a wait costs in cold caches
//! (`python/cold_start.py`: the harness's bytecode run right after a sleep, against back to
//! back), and nothing else: T threads and T closed-loop users, one token
//! of the profile's locked and free work in K release points, the cores the harness ran on,
//! `worker.lock = "gil"`. Nothing is fitted to the points.
//!
//! Beside each point's throughput and p95 the table shows the CPU a request cost — all of
//! CPython's threads (the process's CPU over the counted requests) against the simulated
//! cores' busy time per request — the voluntary context switches a request cost CPython's
//! threads against the simulated threads' sleeps on the GIL, and the profile's drift: how much slower a request ran
//! alone just after the point than just before it, the machine's own movement across it.
//! The CSV also has where the simulated threads were on the GIL (mean threads in their run,
//! asleep in the timed wait, blocked on the mutex, being woken, checking), to set beside
//! what `python/sched_states.py` records of CPython's.
//!
//! ```text
//! cargo run --release --example cpython_gil                 # venv, the harness's grid, predictions
//! cargo run --release --example cpython_gil -- --runs 3     # three runs, judged over their medians
//! cargo run --release --example cpython_gil -- --smoke      # 4 points, under a minute
//! cargo run --release --example cpython_gil -- --from validation/cpython-gil-harness.json
//! cargo run --release --example cpython_gil -- --from A.json --from B.json   # runs measured before
//! cargo run --release --example cpython_gil -- --from … --scheduler ps   # cores as processor sharing
//! ```
//!
//! On a shared machine CPython itself moves from run to run by more than the targets, so a
//! model cannot be judged on one run. With several runs (`--runs N`, each run's wake-up
//! costs measured right after it; or `--from` once per run), every run is predicted from its
//! own profiles and wake-up costs and judged on its own, and then every point is taken over
//! the runs: the median of what CPython did and of what servesim predicted, with both ranges.
//! The targets are judged on the medians, and once more against CPython's own range: how
//! far each median prediction lies outside the range CPython covered over the runs.
//!
//! The venv comes from `python/make_venv.sh` (the machine's `python3`, NumPy from PyPI); when
//! it cannot be made, the example says why and stops without failing. Writes
//! `validation/cpython-gil-harness.json` (the measurement), `validation/cpython-gil-wake.json`
//! (the wake-up costs, measured right after it; `--from` reuses the file beside its input, or
//! measures them then), `validation/cpython-gil-cold.json` (the cold-start cost, the same way;
//! further runs `validation/cpython-gil-runN-{harness,wake,cold}.json`),
//! `validation/cpython-gil.csv` (every run's points, predicted and measured),
//! `validation/cpython-gil-pooled.csv` (with several runs: each point's medians and ranges)
//! and `plots/cpython-gil-{throughput,p95}.{png,svg}`.
//! Points the harness measured while other processes used more than 0.15 of a core are
//! marked and left out of the targets: a busy machine measures the machine, not the GIL.

use rayon::prelude::*;
use serde::Deserialize;
use servesim::plot::{Chart, Point, Series, SeriesKind};
use servesim::scenario::{LockKind, Scenario};
use servesim::workload::Dist;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::root;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

use servesim::experiment::STEAL_LIMIT;

/// Other processes' CPU (cores) above which a measured point is not clean.
const QUIET_CORES: f64 = 0.15;
/// A change of throughput between neighbouring thread counts smaller than this is noise,
/// not a direction.
const DIRECTION_NOISE: f64 = 0.05;
/// Simulated requests per replication, and replications.
const SIM_REQUESTS: u64 = 3000;
const SIM_REPLICATIONS: u32 = 3;

#[derive(Debug, Deserialize)]
struct Harness {
    switch_interval_ms: f64,
    affinity: Vec<usize>,
    points: Vec<Measured>,
}

#[derive(Debug, Clone, Deserialize)]
struct Measured {
    threads: u32,
    work_ms: f64,
    held_share: f64,
    release_points: u32,
    throughput_rps: f64,
    p95_ms: f64,
    #[serde(default)]
    other_cpu_cores: f64,
    #[serde(default)]
    truncated: bool,
    /// Steal over the whole run (s): CPU time a virtual machine's host took while the vCPUs
    /// were ready (absent in older files).
    #[serde(default)]
    steal_s: Option<f64>,
    /// The harness's CPU over the whole run (s), and other processes' (s).
    #[serde(default)]
    process_cpu_total_s: Option<f64>,
    #[serde(default)]
    other_cpu_s: Option<f64>,
    /// The process's CPU over the counted requests (s), every thread's.
    #[serde(default)]
    process_cpu_s: f64,
    /// Requests counted.
    #[serde(default)]
    requests: u64,
    /// The process's voluntary context switches over the counted requests (absent in older
    /// files).
    #[serde(default)]
    voluntary_switches: Option<f64>,
    profile: Profile,
}

#[derive(Debug, Clone, Deserialize)]
struct Profile {
    held_ms_samples: Vec<f64>,
    free_ms_samples: Vec<f64>,
    held_ms_mean: f64,
    free_ms_mean: f64,
    /// How much slower (+) a request ran alone just after the point than just before it:
    /// the machine's own movement across the point (absent in older files).
    #[serde(default)]
    drift: Option<f64>,
    /// The costs as the simulator should see them: a NumPy call's dispatch, made with the
    /// GIL held, moved from the free time to the locked.
    sim: SimCosts,
}

#[derive(Debug, Clone, Deserialize)]
struct SimCosts {
    locked_ms: f64,
    free_ms: f64,
    release_points: u32,
}

/// One point, measured and predicted.
struct Row<'a> {
    m: &'a Measured,
    rps: f64,
    rps_ci: f64,
    p95_ms: f64,
    /// The simulated cores' busy time per request (ms): the work, and what the GIL costs.
    cpu_ms: f64,
    /// The simulated threads' sleeps on the GIL per request.
    sleeps: f64,
    /// Where the simulated threads were on the GIL (mean threads in each state); what
    /// `python/sched_states.py` measures of CPython's.
    states: servesim::sim::GilThreads,
    /// CPython's CPU per request (ms), every thread's; NaN where the file lacks it.
    measured_cpu_ms: f64,
    /// CPython's voluntary context switches per request, every thread's; NaN where the file
    /// lacks them.
    measured_switches: f64,
    /// Over several runs: the median of the runs' own errors (throughput, p95), each run's
    /// prediction against its own measurement.
    pooled_err: Option<(f64, f64)>,
}

impl Measured {
    /// The share of the CPUs' ready time (the harness's CPU, other processes' and the steal)
    /// that the host stole during the point (0–1); 0 where the file lacks it.
    fn steal(&self) -> f64 {
        let s = self.steal_s.unwrap_or(0.0);
        let wanted = self.process_cpu_total_s.unwrap_or(0.0) + self.other_cpu_s.unwrap_or(0.0) + s;
        if wanted > 0.0 { s / wanted } else { 0.0 }
    }
}

impl Row<'_> {
    /// Measured on a quiet machine: no other process busy, the host stealing no more than
    /// [`STEAL_LIMIT`] of the CPUs' time, the run complete.
    fn clean(&self) -> bool {
        self.m.other_cpu_cores <= QUIET_CORES && self.m.steal() <= STEAL_LIMIT && !self.m.truncated
    }
    fn err_rps(&self) -> f64 {
        self.pooled_err.map_or((self.rps - self.m.throughput_rps) / self.m.throughput_rps, |e| e.0)
    }
    fn err_p95(&self) -> f64 {
        self.pooled_err.map_or((self.p95_ms - self.m.p95_ms) / self.m.p95_ms, |e| e.1)
    }
    fn series(&self) -> (u64, u32) {
        ((self.m.held_share * 100.0).round() as u64, self.m.release_points)
    }
}

/// servesim's CPython GIL, checked against CPython itself: python/gil_bench.py's grid of T
/// threads × held share × release points, measured, then predicted from each point's own
/// one-thread profile and this machine's wake-up and cold-start costs (nothing fitted).
/// Writes validation/cpython-gil*.{json,csv} and plots/cpython-gil-*.{png,svg}.
#[derive(clap::Parser, Debug)]
#[command(name = "cpython_gil", after_help = "cargo run --release --example cpython_gil -- --runs 3")]
struct Args {
    /// Measure the grid this many times, each run's wake-up costs right after it, and judge
    /// the points over the runs' medians (a shared machine moves by more than the targets
    /// from run to run).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "from")]
    runs: Option<u32>,
    /// Predict a run measured before instead of measuring (its wake-up and cold-start files
    /// beside it are reused); once per run.
    #[arg(long, value_name = "HARNESS.json")]
    from: Vec<PathBuf>,
    /// 4 points, under a minute (CI).
    #[arg(long)]
    smoke: bool,
    /// The simulated cores: the kernel's time slices (measured here), or processor sharing.
    #[arg(long, value_enum, default_value = "slice")]
    scheduler: Cores,
}

/// How the simulated cores are shared.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Cores {
    /// Time slices of the length this kernel enforces, measured by the example.
    Slice,
    /// Processor sharing.
    Ps,
}

fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let (froms, smoke, ps) = (args.from, args.smoke, args.scheduler == Cores::Ps);
    let runs = args.runs.unwrap_or(1) as usize;
    let root = root();
    let files = if froms.is_empty() {
        match run_harnesses(root, smoke, runs)? {
            Some(f) => f,
            None => return Ok(()),
        }
    } else {
        froms
    };
    let mut data = Vec::new();
    let mut wakes = Vec::new();
    let mut colds = Vec::new();
    for f in &files {
        let json = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        data.push(serde_json::from_str::<Harness>(&json).map_err(|e| format!("{}: {e}", f.display()))?);
        wakes.push(wake_costs(f)?);
        colds.push(cold_costs(root, f)?);
    }
    // The cores as the kernel runs them (time slices, measured), unless asked otherwise.
    let slice_ms = if ps {
        eprintln!("  cores as processor sharing (--scheduler ps)");
        None
    } else {
        let s = servesim::experiment::slice::measure(std::time::Duration::from_millis(500))?;
        eprintln!("  time slice {:.2} ms ({})", s.ms, s.source);
        Some(s.ms)
    };
    let mut per_run: Vec<Vec<Row>> = Vec::new();
    for ((d, w), cold) in data.iter().zip(&wakes).zip(&colds) {
        eprintln!("  {}", w.describe());
        eprintln!(
            "  a take after a wait: {:.1} µs × (1 − e^(−wait / {:.2} ms)) more CPU, at most the bytecode that follows",
            cold.cold_start_us, cold.cold_start_ms
        );
        let rows = d
            .points
            .par_iter()
            .map(|m| predict(m, d, w, cold, slice_ms))
            .collect::<std::result::Result<Vec<_>, String>>()?;
        per_run.push(rows);
    }
    std::fs::create_dir_all(root.join("validation"))?;
    std::fs::write(root.join("validation/cpython-gil.csv"), csv(&per_run))?;
    let pooled = (per_run.len() > 1).then(|| pool(&per_run));
    let pooled_rows: Option<Vec<Row>> = pooled.as_ref().map(|p| p.iter().map(Pooled::row).collect());
    match (&pooled, &pooled_rows) {
        (Some(p), Some(rows)) => {
            for (i, (rows, f)) in per_run.iter().zip(&files).enumerate() {
                println!("\nrun {} ({}), on its own:", i + 1, f.display());
                print!("{}", targets(rows));
            }
            print!("{}", pooled_table(p, rows));
            std::fs::write(root.join("validation/cpython-gil-pooled.csv"), pooled_csv(p, rows))?;
        }
        _ => {
            print!("{}", table(&per_run[0]));
            // A pooled file left by an earlier set of runs would no longer describe these.
            let _ = std::fs::remove_file(root.join("validation/cpython-gil-pooled.csv"));
        }
    }
    // The plots and the verdict: over the runs' medians when there are several.
    let judged: &[Row] = pooled_rows.as_deref().unwrap_or(&per_run[0]);
    if !judged.iter().any(Row::clean) {
        println!(
            "SKIPPED the comparison with CPython: other processes kept the CPUs busy during every one \
             of the {} points, so none measures CPython's GIL alone (nothing to compare, no plots); \
             run it again on a quiet machine",
            judged.len()
        );
        return Ok(());
    }
    for (stem, what) in [("cpython-gil-throughput", Metric::Rps), ("cpython-gil-p95", Metric::P95)] {
        chart(judged, pooled.as_deref(), what).save(&root.join("plots").join(stem))?;
    }
    if let (Some(p), Some(rows)) = (&pooled, &pooled_rows) {
        println!(
            "\nover the {} runs (each point: the median of its runs, measured and predicted):",
            per_run.len()
        );
        print!("{}", targets(rows));
        print!("{}", spread(p, rows));
    } else {
        print!("{}", targets(judged));
    }
    for rows in &per_run {
        one_thread_checks(rows);
    }
    Ok(())
}

/// What holds on any machine: with one thread there is nobody to contend with, so the
/// simulator, given the thread's own profile, must reproduce the profile's rate; and the
/// point, a second measurement of the same thread alone, must agree with the prediction
/// within 15% or within how far the machine moved between the two measurements (the
/// profile's rate against the point's), whichever is wider.
fn one_thread_checks(rows: &[Row]) {
    for r in rows.iter().filter(|r| r.clean() && r.m.threads == 1) {
        let p = &r.m.profile;
        // What the simulator was given: the request alone, uninstrumented.
        let profile_rps = 1e3 / (p.sim.locked_ms + p.sim.free_ms);
        let plumbing = (r.rps - profile_rps).abs() / profile_rps;
        assert!(
            plumbing < 0.05,
            "one thread alone: predicted {:.1} req/s from a profile of {profile_rps:.1} req/s",
            r.rps
        );
        let drift = (profile_rps - r.m.throughput_rps).abs() / r.m.throughput_rps;
        let allowed = (drift + 0.05).max(0.15);
        if r.err_rps().abs() >= 0.15 && r.err_rps().abs() < allowed {
            println!(
                "note: one thread alone (K={}): predicted {:.1} vs measured {:.1} req/s, but the same \
                 thread's profile, measured just before and after it, ran at {profile_rps:.1}: the machine moved {:.0}% \
                 between two measurements of the same thing, and the point is judged against that",
                r.m.release_points,
                r.rps,
                r.m.throughput_rps,
                100.0 * drift
            );
        }
        assert!(
            r.err_rps().abs() < allowed,
            "one thread alone, predicted {:.1} vs measured {:.1} (the profile ran at {profile_rps:.1})",
            r.rps,
            r.m.throughput_rps
        );
    }
}

/// The wake-up costs measured with a harness run: `X-wake.json` beside its `X.json`,
/// measured now (and written there) when there is none, so that a run and its calibration
/// come from the same machine at the same time.
fn wake_costs(harness: &Path) -> Result<servesim::experiment::Wake> {
    let path = wake_path(harness);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let w: WakeFile = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wake-up costs from {}", path.display());
        let (busy_samples_us, Some(busy_latency), Some(signal)) =
            (w.busy_samples_us, w.busy_latency, w.signal)
        else {
            return Err(format!(
                "{} was written before wake-ups were measured with every core busy and their signals timed; \
                 delete it to measure them again",
                path.display()
            )
            .into());
        };
        let mutex = match w.mutex {
            Some(m) => m,
            None => {
                eprintln!(
                    "  {} has no mutex wake-ups (written before they were measured): measuring them now",
                    path.display()
                );
                servesim::experiment::wake_costs().mutex
            }
        };
        return Ok(servesim::experiment::Wake {
            samples_us: w.samples_us,
            latency: w.latency,
            busy_samples_us,
            busy_latency,
            signal,
            vain: w.vain,
            mutex,
            // Not kept in the file: the rounds it holds were those the measurement kept.
            steal_pct: 0.0,
            set_aside: 0,
        });
    }
    eprintln!("measuring this machine's wake-up costs…");
    let w = servesim::experiment::wake_costs();
    let file = WakeFile {
        samples_us: w.samples_us.clone(),
        latency: w.latency.clone(),
        busy_samples_us: w.busy_samples_us.clone(),
        busy_latency: Some(w.busy_latency.clone()),
        signal: Some(w.signal.clone()),
        vain: w.vain.clone(),
        mutex: Some(w.mutex.clone()),
    };
    std::fs::write(&path, serde_json::to_string(&file)?)?;
    Ok(w)
}

/// What a take of the GIL after a wait costs in cold caches, as `python/cold_start.py`
/// measures it (`cost.cold_start_us`, `cost.cold_start_ms`).
#[derive(Debug, Deserialize)]
struct Cold {
    cold_start_us: f64,
    cold_start_ms: f64,
}

/// The cold-start cost measured with a harness run: `X-cold.json` beside its `X.json`,
/// measured now with the venv's Python (and written there) when there is none.
fn cold_costs(root: &Path, harness: &Path) -> Result<Cold> {
    let path = cold_path(harness);
    if !path.exists() {
        eprintln!("measuring what a take after a wait costs in cold caches (python/cold_start.py)…");
        let python = venv_python(root)?.map_err(|why| format!("the Python venv could not be made: {why}"))?;
        let status = Command::new(&python)
            .arg(root.join("python/cold_start.py"))
            .arg("--json")
            .arg(&path)
            .status()
            .map_err(|e| format!("{python}: {e}"))?;
        if !status.success() {
            return Err(format!("python/cold_start.py failed ({status})").into());
        }
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// `X-wake.json` for a harness run `X-harness.json` (or `X.json`).
fn wake_path(harness: &Path) -> PathBuf {
    beside(harness, "wake")
}

/// `X-cold.json` for a harness run `X-harness.json` (or `X.json`).
fn cold_path(harness: &Path) -> PathBuf {
    beside(harness, "cold")
}

/// `X-{kind}.json` for a harness run `X-harness.json` (or `X.json`).
fn beside(harness: &Path, kind: &str) -> PathBuf {
    let stem = harness.file_stem().and_then(|s| s.to_str()).unwrap_or("harness");
    let stem = stem.strip_suffix("-harness").unwrap_or(stem);
    harness.with_file_name(format!("{stem}-{kind}.json"))
}

/// The wake-up costs as a file.
#[derive(Debug, serde::Serialize, Deserialize)]
struct WakeFile {
    samples_us: Vec<f64>,
    latency: servesim::stats::Rounds,
    #[serde(default)]
    busy_samples_us: Vec<f64>,
    #[serde(default)]
    busy_latency: Option<servesim::stats::Rounds>,
    #[serde(default)]
    signal: Option<servesim::stats::Rounds>,
    vain: servesim::stats::Rounds,
    #[serde(default)]
    mutex: Option<servesim::stats::Rounds>,
}

/// Makes the venv and runs the harness's grid `runs` times, each run's wake-up costs
/// measured right after it; returns the files written, or `None` (with the reason printed)
/// when the venv cannot be made.
/// Makes the harness's venv (`python/make_venv.sh`, which reuses one already made) and
/// returns its python, or why it could not be made.
fn venv_python(root: &Path) -> Result<std::result::Result<String, String>> {
    let venv = Command::new("bash").arg(root.join("python/make_venv.sh")).output()?;
    if !venv.status.success() {
        return Ok(Err(String::from_utf8_lossy(&venv.stderr).trim().to_string()));
    }
    let stdout = String::from_utf8_lossy(&venv.stdout);
    Ok(Ok(stdout.lines().last().unwrap_or_default().trim().to_string()))
}

fn run_harnesses(root: &Path, smoke: bool, runs: usize) -> Result<Option<Vec<PathBuf>>> {
    let python = match venv_python(root)? {
        Ok(python) => python,
        Err(why) => {
            println!("skipped: the Python venv could not be made: {why}");
            return Ok(None);
        }
    };
    let mut files = Vec::new();
    for run in 1..=runs {
        let name = match (smoke, run) {
            (true, 1) => "target/cpython-gil-smoke.json".to_string(),
            (true, n) => format!("target/cpython-gil-smoke-run{n}.json"),
            (false, 1) => "validation/cpython-gil-harness.json".to_string(),
            (false, n) => format!("validation/cpython-gil-run{n}-harness.json"),
        };
        let out = root.join(name);
        std::fs::create_dir_all(out.parent().unwrap_or(root))?;
        eprintln!(
            "running the CPython harness, run {run} of {runs} ({})…",
            if smoke { "smoke" } else { "grid, about 3 minutes" }
        );
        let status = Command::new(&python)
            .arg(root.join("python/gil_bench.py"))
            .arg(if smoke { "--smoke" } else { "--grid" })
            .arg("--out")
            .arg(&out)
            .status()?;
        if !status.success() {
            return Err(format!("the harness failed ({status})").into());
        }
        // This run's wake-up and cold-start costs, measured afresh before the next run begins.
        let _ = std::fs::remove_file(wake_path(&out));
        wake_costs(&out)?;
        let _ = std::fs::remove_file(cold_path(&out));
        cold_costs(root, &out)?;
        files.push(out);
    }
    // Runs an earlier, longer set left behind are not part of this one.
    for n in runs + 1.. {
        let stale = |kind: &str| match smoke {
            true if kind == "harness" => root.join(format!("target/cpython-gil-smoke-run{n}.json")),
            true => root.join(format!("target/cpython-gil-smoke-run{n}-wake.json")),
            false => root.join(format!("validation/cpython-gil-run{n}-{kind}.json")),
        };
        if std::fs::remove_file(stale("harness")).is_err() {
            break;
        }
        let _ = std::fs::remove_file(stale("wake"));
        let _ = std::fs::remove_file(stale("cold"));
    }
    Ok(Some(files))
}

/// servesim's prediction of one point, from its one-thread profile and the wake-up costs.
fn predict<'a>(
    m: &'a Measured,
    h: &Harness,
    wake: &servesim::experiment::Wake,
    cold: &Cold,
    slice_ms: Option<f64>,
) -> std::result::Result<Row<'a>, String> {
    let p = &m.profile;
    // Each request as the profile measured it, with the calls' dispatch moved under the GIL.
    let shift = |v: &[f64], mean: f64, want: f64| -> Dist {
        let d = want - mean;
        Dist::Empirical { file: None, samples: v.iter().map(|x| (x + d).max(0.0)).collect::<Vec<_>>().into() }
    };
    let mut sc = Scenario::defaults();
    sc.system.cores = h.affinity.len().max(1) as u32;
    sc.worker.threads = m.threads;
    sc.worker.lock = LockKind::Gil;
    if let Some(ms) = slice_ms {
        sc.system.scheduler = servesim::scenario::Scheduler::Slice;
        sc.system.slice_ms = ms;
    }
    sc.worker.switch_interval_ms = h.switch_interval_ms;
    sc.clients.users = m.threads;
    sc.workload.new_tokens = Dist::Const(1.0);
    sc.cost.token_locked_ms = shift(&p.held_ms_samples, p.held_ms_mean, p.sim.locked_ms);
    sc.cost.token_free_ms = shift(&p.free_ms_samples, p.free_ms_mean, p.sim.free_ms);
    // No NumPy call, no release point: only the request's end lets the GIL go.
    sc.cost.release_points = if p.sim.free_ms > 0.0 { p.sim.release_points.max(1) } else { 1 };
    wake.apply(&mut sc.cost);
    (sc.cost.cold_start_us, sc.cost.cold_start_ms) = (cold.cold_start_us, cold.cold_start_ms);
    sc.run.requests = SIM_REQUESTS;
    sc.run.warmup_requests = 200 + 4 * u64::from(m.threads);
    sc.run.replications = SIM_REPLICATIONS;
    sc.validate().map_err(|e| e.to_string())?;
    let r = servesim::sim::simulate(&sc).map_err(|e| e.to_string())?;
    Ok(Row {
        m,
        rps: r.figures.throughput_rps,
        rps_ci: r.ci95.throughput_rps,
        p95_ms: r.figures.latency_ms.p95,
        cpu_ms: r.figures.utilization.cores * f64::from(sc.system.cores) * 1e3
            / r.figures.throughput_rps.max(1e-9),
        sleeps: r.figures.gil_sleeps_per_request,
        states: r.figures.gil_threads,
        measured_cpu_ms: if m.requests == 0 { f64::NAN } else { m.process_cpu_s * 1e3 / m.requests as f64 },
        measured_switches: match m.voluntary_switches {
            Some(n) if m.requests > 0 => n / m.requests as f64,
            _ => f64::NAN,
        },
        pooled_err: None,
    })
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "\n   T  held%      K   measured req/s  predicted req/s   error   p95 meas ms  p95 pred ms   error  CPU/req meas ms  pred ms  switches/req meas   pred   drift\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:>4} {:>6.0} {:>6} {:>16.1} {:>16.1} {:>+7.1}% {:>12.2} {:>12.2} {:>+7.1}% {:>16.2} {:>8.2} {:>18.0} {:>6.0} {:>7}{}",
            r.m.threads,
            r.m.held_share * 100.0,
            r.m.release_points,
            r.m.throughput_rps,
            r.rps,
            r.err_rps() * 100.0,
            r.m.p95_ms,
            r.p95_ms,
            r.err_p95() * 100.0,
            r.measured_cpu_ms,
            r.cpu_ms,
            r.measured_switches,
            r.sleeps,
            r.m.profile.drift.map_or_else(|| "-".to_string(), |d| format!("{:+.1}%", d * 100.0)),
            if r.clean() {
                String::new()
            } else if r.m.steal() > STEAL_LIMIT {
                format!("  (the host stole {:.0}% of the CPUs' time: left out)", r.m.steal() * 100.0)
            } else {
                "  (busy machine: left out)".to_string()
            }
        );
    }
    s
}

/// A CSV cell: the value, or empty where the harness file lacks it (NaN).
fn blank_nan(x: f64) -> String {
    if x.is_nan() { String::new() } else { x.to_string() }
}

/// Every run's points, one row each, the run numbered from 1.
fn csv(per_run: &[Vec<Row>]) -> String {
    let mut s = String::from(
        "run,threads,work_ms,held_share,release_points,measured_rps,predicted_rps,predicted_rps_ci95,\
         error_rps,measured_p95_ms,predicted_p95_ms,error_p95,measured_cpu_ms_per_request,\
         predicted_cpu_ms_per_request,measured_voluntary_switches_per_request,\
         predicted_gil_sleeps_per_request,predicted_gil_in_run,predicted_gil_asleep_in_timed_wait,\
         predicted_gil_blocked_on_mutex,predicted_gil_being_woken,predicted_gil_woken_checking,\
         profile_drift,other_cpu_cores,host_steal_pct,clean\n",
    );
    for (run, rows) in per_run.iter().enumerate() {
        for r in rows {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                run + 1,
                r.m.threads,
                r.m.work_ms,
                r.m.held_share,
                r.m.release_points,
                r.m.throughput_rps,
                r.rps,
                r.rps_ci,
                r.err_rps(),
                r.m.p95_ms,
                r.p95_ms,
                r.err_p95(),
                blank_nan(r.measured_cpu_ms),
                r.cpu_ms,
                blank_nan(r.measured_switches),
                r.sleeps,
                r.states.in_run,
                r.states.asleep_in_timed_wait,
                r.states.blocked_on_mutex,
                r.states.being_woken,
                r.states.woken_checking,
                r.m.profile.drift.map_or_else(String::new, |d| d.to_string()),
                r.m.other_cpu_cores,
                r.m.steal() * 100.0,
                r.clean()
            );
        }
    }
    s
}

/// The median and the range of one figure over the runs.
#[derive(Clone, Copy, Debug)]
struct Range {
    median: f64,
    min: f64,
    max: f64,
}

impl Range {
    /// Over the values that are numbers (NaN everywhere when none is).
    fn of(v: impl IntoIterator<Item = f64>) -> Range {
        let v: Vec<f64> = v.into_iter().filter(|x| !x.is_nan()).collect();
        let min = v.iter().copied().reduce(f64::min).unwrap_or(f64::NAN);
        let max = v.iter().copied().reduce(f64::max).unwrap_or(f64::NAN);
        Range { median: median(v), min, max }
    }

    /// The range's width relative to its median.
    fn width(&self) -> f64 {
        (self.max - self.min) / self.median
    }
}

/// One point of the grid over several runs: each figure's median and range over the runs
/// in which the point was measured on a quiet machine (over every run when in none).
struct Pooled {
    /// The point as the first of those runs measured it, with the measured figures replaced
    /// by their medians (what [`Row`] and the verdict read).
    m: Measured,
    runs: usize,
    measured_rps: Range,
    measured_p95: Range,
    predicted_rps: Range,
    predicted_p95: Range,
    /// Each run's own error (its prediction against its measurement).
    error_rps: Range,
    error_p95: Range,
    rps_ci: f64,
    cpu_ms: f64,
    sleeps: f64,
    /// The first of the runs' simulated GIL states (they are the model's, not the machine's).
    states: servesim::sim::GilThreads,
    measured_cpu_ms: f64,
    measured_switches: f64,
}

impl Pooled {
    /// The point as one row: measured and predicted medians; its errors the median of the
    /// runs' own errors.
    fn row(&self) -> Row<'_> {
        Row {
            m: &self.m,
            rps: self.predicted_rps.median,
            rps_ci: self.rps_ci,
            p95_ms: self.predicted_p95.median,
            cpu_ms: self.cpu_ms,
            sleeps: self.sleeps,
            states: self.states,
            measured_cpu_ms: self.measured_cpu_ms,
            measured_switches: self.measured_switches,
            pooled_err: Some((self.error_rps.median, self.error_p95.median)),
        }
    }
}

/// The point's identity across runs: threads, held share, release points, work.
fn key(m: &Measured) -> (u32, i64, u32, i64) {
    (m.threads, (m.held_share * 1e3).round() as i64, m.release_points, (m.work_ms * 1e3).round() as i64)
}

/// Every point of the first run, pooled with the same point of the others.
fn pool(per_run: &[Vec<Row>]) -> Vec<Pooled> {
    per_run[0]
        .iter()
        .map(|first| {
            let same: Vec<&Row> =
                per_run.iter().filter_map(|rows| rows.iter().find(|r| key(r.m) == key(first.m))).collect();
            let clean: Vec<&Row> = same.iter().copied().filter(|r| r.clean()).collect();
            let used = if clean.is_empty() { same } else { clean };
            let range = |f: &dyn Fn(&Row) -> f64| Range::of(used.iter().map(|r| f(r)));
            let measured_rps = range(&|r| r.m.throughput_rps);
            let measured_p95 = range(&|r| r.m.p95_ms);
            let mut m = used[0].m.clone();
            m.throughput_rps = measured_rps.median;
            m.p95_ms = measured_p95.median;
            let drift = range(&|r| r.m.profile.drift.unwrap_or(f64::NAN)).median;
            m.profile.drift = (!drift.is_nan()).then_some(drift);
            Pooled {
                m,
                runs: used.len(),
                measured_rps,
                measured_p95,
                predicted_rps: range(&|r| r.rps),
                predicted_p95: range(&|r| r.p95_ms),
                error_rps: range(&|r| r.err_rps()),
                error_p95: range(&|r| r.err_p95()),
                rps_ci: range(&|r| r.rps_ci).median,
                cpu_ms: range(&|r| r.cpu_ms).median,
                sleeps: range(&|r| r.sleeps).median,
                states: used[0].states,
                measured_cpu_ms: range(&|r| r.measured_cpu_ms).median,
                measured_switches: range(&|r| r.measured_switches).median,
            }
        })
        .collect()
}

fn pooled_table(pooled: &[Pooled], rows: &[Row]) -> String {
    let mut s = format!(
        "\nover the runs: each figure the median of the runs that measured the point on a quiet machine [their range]; \
         an error is the median of the runs' own errors (each run's prediction against its own measurement)\n\
         {:>4} {:>5} {:>6} {:>4}  {:>22}  {:>22} {:>20}  {:>22}  {:>22} {:>20} {:>8} {:>8} {:>8} {:>6}\n",
        "T",
        "held%",
        "K",
        "runs",
        "CPython req/s",
        "servesim req/s",
        "error",
        "CPython p95 ms",
        "servesim p95 ms",
        "error",
        "CPU meas",
        "CPU pred",
        "sw meas",
        "sw pred"
    );
    let range = |r: &Range| format!("{:.1} [{:.1}–{:.1}]", r.median, r.min, r.max);
    let pct = |r: &Range| format!("{:+.1}% [{:+.0}–{:+.0}]", r.median * 100.0, r.min * 100.0, r.max * 100.0);
    for (p, r) in pooled.iter().zip(rows) {
        let _ = writeln!(
            s,
            "{:>4} {:>5.0} {:>6} {:>4}  {:>22}  {:>22} {:>20}  {:>22}  {:>22} {:>20} {:>8.2} {:>8.2} {:>8.0} {:>6.0}{}",
            r.m.threads,
            r.m.held_share * 100.0,
            r.m.release_points,
            p.runs,
            range(&p.measured_rps),
            range(&p.predicted_rps),
            pct(&p.error_rps),
            range(&p.measured_p95),
            range(&p.predicted_p95),
            pct(&p.error_p95),
            r.measured_cpu_ms,
            r.cpu_ms,
            r.measured_switches,
            r.sleeps,
            if r.clean() { "" } else { "  (busy machine in every run: left out)" }
        );
    }
    s
}

fn pooled_csv(pooled: &[Pooled], rows: &[Row]) -> String {
    let mut s = String::from(
        "threads,work_ms,held_share,release_points,runs,\
         measured_rps_median,measured_rps_min,measured_rps_max,\
         predicted_rps_median,predicted_rps_min,predicted_rps_max,error_rps,\
         measured_p95_ms_median,measured_p95_ms_min,measured_p95_ms_max,\
         predicted_p95_ms_median,predicted_p95_ms_min,predicted_p95_ms_max,error_p95,\
         error_rps_min,error_rps_max,error_p95_min,error_p95_max,clean\n",
    );
    for (p, r) in pooled.iter().zip(rows) {
        let (a, b, c, d) = (p.measured_rps, p.predicted_rps, p.measured_p95, p.predicted_p95);
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.m.threads,
            r.m.work_ms,
            r.m.held_share,
            r.m.release_points,
            p.runs,
            a.median,
            a.min,
            a.max,
            b.median,
            b.min,
            b.max,
            r.err_rps(),
            c.median,
            c.min,
            c.max,
            d.median,
            d.min,
            d.max,
            r.err_p95(),
            p.error_rps.min,
            p.error_rps.max,
            p.error_p95.min,
            p.error_p95.max,
            r.clean()
        );
    }
    s
}

/// How far the runs themselves moved: CPython's own range at each point, the prediction's
/// (each run's profiles and wake-up costs), and the runs' own errors — a miss that every run
/// makes in the same direction is the model's; one whose runs' errors straddle zero is
/// within what the runs scatter.
fn spread(pooled: &[Pooled], rows: &[Row]) -> String {
    let both: Vec<(&Pooled, &Row)> =
        pooled.iter().zip(rows).filter(|(p, r)| r.clean() && p.runs > 1).collect();
    if both.is_empty() {
        return "no point was measured on a quiet machine in more than one run: no spread to report\n".into();
    }
    let pct = |v: Vec<f64>| (median(v.clone()) * 100.0, v.into_iter().fold(0.0, f64::max) * 100.0);
    let (cpy_rps, cpy_rps_max) = pct(both.iter().map(|(p, _)| p.measured_rps.width()).collect());
    let (cpy_p95, _) = pct(both.iter().map(|(p, _)| p.measured_p95.width()).collect());
    let (sim_rps, sim_rps_max) = pct(both.iter().map(|(p, _)| p.predicted_rps.width()).collect());
    let (err_rps, err_rps_max) = pct(both.iter().map(|(p, _)| p.error_rps.max - p.error_rps.min).collect());
    let over: Vec<&(&Pooled, &Row)> = both.iter().filter(|(_, r)| r.err_rps().abs() > 0.15).collect();
    let straddle = over.iter().filter(|(p, _)| p.error_rps.min < 0.0 && p.error_rps.max > 0.0).count();
    format!(
        "\nspread over the runs ({} points measured quietly in two runs or more; range = (max − min) / median):\n\
         CPython's own range: throughput median {cpy_rps:.1}%, max {cpy_rps_max:.1}%; p95 median {cpy_p95:.1}%\n\
         servesim's range (each run's own profiles and wake-up costs): throughput median {sim_rps:.1}%, max {sim_rps_max:.1}%\n\
         the runs' own throughput errors span (max − min) a median {err_rps:.1} points, at most {err_rps_max:.1}\n\
         {} points beyond ±15% in throughput (median of the runs' errors): {straddle} with runs on both sides of CPython, \
         {} missed the same way in every run\n",
        both.len(),
        over.len(),
        over.len() - straddle
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Points whose throughput moves by more than the noise from one thread count to the next
/// of the same (H, K): (threads, measured change, predicted change).
fn directions<'a>(rows: &'a [Row<'a>]) -> Vec<(&'a Row<'a>, f64, f64)> {
    let clean: Vec<&Row> = rows.iter().filter(|r| r.clean()).collect();
    let mut out = Vec::new();
    for r in &clean {
        let prev = clean
            .iter()
            .filter(|q| q.series() == r.series() && q.m.threads < r.m.threads)
            .max_by_key(|q| q.m.threads);
        if let Some(q) = prev {
            let measured = r.m.throughput_rps / q.m.throughput_rps - 1.0;
            if measured.abs() > DIRECTION_NOISE {
                out.push((*r, measured, r.rps / q.rps - 1.0));
            }
        }
    }
    out
}

fn targets(rows: &[Row]) -> String {
    let clean: Vec<&Row> = rows.iter().filter(|r| r.clean()).collect();
    let rps: Vec<f64> = clean.iter().map(|r| r.err_rps().abs() * 100.0).collect();
    let p95: Vec<f64> = clean.iter().map(|r| r.err_p95().abs() * 100.0).collect();
    let dirs = directions(rows);
    let wrong = dirs.iter().filter(|(_, m, p)| m.signum() != p.signum()).count();
    let max_rps = rps.iter().copied().fold(0.0, f64::max);
    let mut s = format!(
        "\n{} points, {} measured on a quiet machine ({} left out)\n",
        rows.len(),
        clean.len(),
        rows.len() - clean.len()
    );
    let mut line = |name: &str, limit: f64, got: f64| {
        let _ = writeln!(
            s,
            "target: {name:<44} ≤ {limit:>4.0}%  got {got:>6.1}%  {}",
            if got <= limit { "met" } else { "MISSED" }
        );
    };
    line("throughput median |error|", 5.0, median(rps.clone()));
    line("throughput max |error|", 15.0, max_rps);
    line("p95 median |error|", 10.0, median(p95));
    let _ = writeln!(
        s,
        "target: direction of throughput with more threads      right at {} of {} changes beyond ±{:.0}%  {}",
        dirs.len() - wrong,
        dirs.len(),
        DIRECTION_NOISE * 100.0,
        if wrong == 0 { "met" } else { "MISSED" }
    );
    for (r, m, p) in dirs.iter().filter(|(_, m, p)| m.signum() != p.signum()) {
        let _ = writeln!(
            s,
            "  wrong way: T={} H={:.0}% K={}: measured {:+.1}%, predicted {:+.1}%",
            r.m.threads,
            r.m.held_share * 100.0,
            r.m.release_points,
            m * 100.0,
            p * 100.0
        );
    }
    s
}

#[derive(Clone, Copy)]
enum Metric {
    Rps,
    P95,
}

/// Throughput (or p95) against threads for the series at the lesson's held share, one per K.
/// With several runs, each measured point's bar spans half the runs' range either side.
fn chart(rows: &[Row], pooled: Option<&[Pooled]>, what: Metric) -> Chart {
    let mut series = Vec::new();
    let mut ks: Vec<u32> = rows.iter().filter(|r| r.series().0 == 82).map(|r| r.m.release_points).collect();
    ks.sort_unstable();
    ks.dedup();
    for (color, k) in ks.into_iter().enumerate() {
        let mut pts: Vec<&Row> = rows.iter().filter(|r| r.series() == (82, k) && r.clean()).collect();
        pts.sort_by_key(|r| r.m.threads);
        if pts.len() < 2 {
            continue;
        }
        let (pred, meas): (Vec<Point>, Vec<Point>) = pts
            .iter()
            .map(|r| {
                let x = f64::from(r.m.threads);
                let half = |f: &dyn Fn(&Pooled) -> Range| {
                    pooled
                        .and_then(|ps| ps.iter().find(|p| key(&p.m) == key(r.m)))
                        .map_or(0.0, |p| (f(p).max - f(p).min) / 2.0)
                };
                match what {
                    Metric::Rps => (
                        Point::with_half_width(x, r.rps, r.rps_ci),
                        Point::with_half_width(x, r.m.throughput_rps, half(&|p| p.measured_rps)),
                    ),
                    Metric::P95 => (
                        Point::with_half_width(x, r.p95_ms, 0.0),
                        Point::with_half_width(x, r.m.p95_ms, half(&|p| p.measured_p95)),
                    ),
                }
            })
            .unzip();
        series.push(Series {
            label: format!("K = {k}: servesim"),
            kind: SeriesKind::Band,
            points: pred,
            color,
        });
        series.push(Series {
            label: format!("K = {k}: CPython"),
            kind: SeriesKind::Points,
            points: meas,
            color,
        });
    }
    let (title, y) = match what {
        Metric::Rps => ("throughput", "throughput (req/s)"),
        Metric::P95 => ("p95 latency", "p95 latency (ms)"),
    };
    Chart {
        title: format!("CPython threads, 82% of each request under the GIL, K release points: {title}"),
        x_label: "threads (closed loop, one user each)".into(),
        y_label: y.into(),
        log_x: true,
        series,
    }
}
