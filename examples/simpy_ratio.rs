//! Example: servesim's speed against SimPy's, on the same M/M/4, in the same run.
//!
//! `models/mmc.toml` (Poisson arrivals at 3.6/s, exponential service of mean 1 s, 4 servers,
//! ρ = 0.9) is simulated by servesim — one replication, one core — and by SimPy 4.1.2
//! (`python/simpy_mmc.py`, in the venv `python/make_venv.sh` makes), each for the same number
//! of customers; both report customers per second of wall time, and their ratio is printed
//! against the goal of 150×. Both mean response times are checked against Erlang C
//! (2.9694 s), so neither is fast by being wrong.
//!
//! ```text
//! cargo run --release --example simpy_ratio                       # 1,000,000 customers, 5 rounds
//! cargo run --release --example simpy_ratio -- --customers 200000 --rounds 3
//! ```
//!
//! Without a venv it says why and measures servesim alone. The machine is shared, and a
//! shared machine moves either side's rate by tens of percent from one minute to the next:
//! the two are run in turn, round after round, each round's ratio taken between runs
//! seconds apart, and the median round is the figure.

use servesim::scenario::{Override, Scenario};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod common;
use common::root;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Erlang C's mean response time of this M/M/4 (s).
const ERLANG_C_S: f64 = 2.9694;
/// The goal: servesim at least this many times SimPy's rate.
const GOAL: f64 = 150.0;

/// servesim's speed against SimPy 4.1.2 on the same M/M/4 (models/mmc.toml), one core
/// each, in turn, round after round: both rates, each round's ratio and their median.
#[derive(clap::Parser, Debug)]
#[command(name = "simpy_ratio")]
struct Args {
    /// Customers servesim simulates per round (SimPy a tenth of them, at least 10,000: its
    /// rate does not depend on the count once past warm-up).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(10_000..=100_000_000))]
    customers: u64,
    /// Rounds: servesim, then SimPy, this many times.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
}

/// Rounds' figures: their median and range.
struct Spread {
    median: f64,
    lo: f64,
    hi: f64,
}

impl Spread {
    /// Of `v` (not empty).
    fn of(v: &[f64]) -> Self {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Self { median, lo: v[0], hi: v[n - 1] }
    }

    /// "median (lo–hi)", each divided by `unit`, with `digits` decimals.
    fn show(&self, unit: f64, digits: usize) -> String {
        let f = |x: f64| format!("{:.digits$}", x / unit);
        format!("{} ({}–{})", f(self.median), f(self.lo), f(self.hi))
    }
}

/// One servesim run: customers per second of wall time.
fn ours(sc: &Scenario) -> Result<f64> {
    let t0 = Instant::now();
    let r = servesim::sim::run_replication(sc, 0)?;
    let secs = t0.elapsed().as_secs_f64();
    let mean_s = r.figures.latency_ms.mean / 1e3;
    if (mean_s - ERLANG_C_S).abs() / ERLANG_C_S >= 0.05 {
        return Err(format!(
            "servesim's M/M/4 is off: mean response {mean_s} s against Erlang C's {ERLANG_C_S}"
        )
        .into());
    }
    let rate = r.finished as f64 / secs;
    println!(
        "  servesim: {} customers in {secs:.3} s: {:.2} M customers/s, mean response {mean_s:.4} s",
        r.finished,
        rate / 1e6
    );
    Ok(rate)
}

/// One SimPy run of `n` customers: customers per second of wall time.
fn theirs(python: &str, script: &Path, n: u64) -> Result<f64> {
    let out = Command::new(python).arg(script).args(["--customers", &n.to_string()]).output()?;
    if !out.status.success() {
        return Err(format!("simpy_mmc.py failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let j: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let rate = j["customers_per_s"].as_f64().ok_or("simpy_mmc.py printed no customers_per_s")?;
    let mean_s = j["mean_response_s"].as_f64().ok_or("simpy_mmc.py printed no mean_response_s")?;
    if (mean_s - ERLANG_C_S).abs() / ERLANG_C_S >= 0.1 {
        return Err(format!(
            "SimPy's M/M/4 is off: mean response {mean_s} s against Erlang C's {ERLANG_C_S}"
        )
        .into());
    }
    println!(
        "  SimPy {}: {} customers in {:.3} s: {:.1} k customers/s, mean response {mean_s:.4} s",
        j["simpy"].as_str().unwrap_or("?"),
        j["customers"],
        j["wall_s"].as_f64().unwrap_or(f64::NAN),
        rate / 1e3
    );
    Ok(rate)
}

fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let root = root();
    let sets: Vec<Override> = [format!("run.requests={}", args.customers), "run.warmup_requests=0".into()]
        .iter()
        .map(|s| s.parse())
        .collect::<std::result::Result<_, _>>()?;
    let sc = Scenario::load(&root.join("models/mmc.toml"), &sets)?;
    let venv = Command::new("bash").arg(root.join("python/make_venv.sh")).output()?;
    let python = if venv.status.success() {
        Some(String::from_utf8_lossy(&venv.stdout).lines().last().unwrap_or_default().trim().to_string())
    } else {
        println!(
            "skipped SimPy: the Python venv could not be made: {}; servesim alone:",
            String::from_utf8_lossy(&venv.stderr).trim()
        );
        None
    };
    let script = root.join("python/simpy_mmc.py");
    let theirs_n = (args.customers / 10).max(10_000);
    let (mut us, mut them, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        println!("round {round} of {}:", args.rounds);
        let a = ours(&sc)?;
        us.push(a);
        if let Some(python) = &python {
            let b = theirs(python, &script, theirs_n)?;
            println!("  ratio {:.0}×", a / b);
            them.push(b);
            ratios.push(a / b);
        }
    }
    println!("servesim: median {} M customers/s", Spread::of(&us).show(1e6, 2));
    if ratios.is_empty() {
        return Ok(());
    }
    println!("SimPy: median {} k customers/s", Spread::of(&them).show(1e3, 1));
    let Spread { median: ratio, lo: rlo, hi: rhi } = Spread::of(&ratios);
    println!(
        "ratio: servesim runs {ratio:.0}× SimPy's rate on one core, the median of {} rounds ({rlo:.0}–{rhi:.0}×; goal ≥ {GOAL:.0}×: {})",
        args.rounds,
        if ratio >= GOAL { "met" } else { "missed" }
    );
    Ok(())
}
