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
//! cargo run --release --example simpy_ratio                       # 1,000,000 customers
//! cargo run --release --example simpy_ratio -- --customers 200000
//! ```
//!
//! Without a venv it says why and measures servesim alone. The machine is shared: run it on
//! a quiet one; the ratio is taken in one run so that both sides meet the same machine.

use servesim::scenario::{Override, Scenario};
use std::process::Command;
use std::time::Instant;

mod common;
use common::root;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Erlang C's mean response time of this M/M/4 (s).
const ERLANG_C_S: f64 = 2.9694;
/// The goal: servesim at least this many times SimPy's rate.
const GOAL: f64 = 150.0;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let customers: u64 = match args.iter().position(|a| a == "--customers") {
        Some(i) => args.get(i + 1).ok_or("--customers needs a number")?.parse()?,
        None => 1_000_000,
    };
    let root = root();
    let sets: Vec<Override> = [format!("run.requests={customers}"), "run.warmup_requests=0".into()]
        .iter()
        .map(|s| s.parse())
        .collect::<std::result::Result<_, _>>()?;
    let sc = Scenario::load(&root.join("models/mmc.toml"), &sets)?;
    let t0 = Instant::now();
    let r = servesim::sim::run_replication(&sc, 0)?;
    let ours_s = t0.elapsed().as_secs_f64();
    let ours = r.finished as f64 / ours_s;
    let ours_mean_s = r.figures.latency_ms.mean / 1e3;
    println!(
        "servesim: {} customers in {ours_s:.3} s: {:.2} M customers/s, mean response {ours_mean_s:.4} s",
        r.finished,
        ours / 1e6
    );
    assert!((ours_mean_s - ERLANG_C_S).abs() / ERLANG_C_S < 0.05, "servesim's M/M/4 is off: {ours_mean_s}");

    let venv = Command::new("bash").arg(root.join("python/make_venv.sh")).output()?;
    if !venv.status.success() {
        println!(
            "skipped SimPy: the Python venv could not be made: {}",
            String::from_utf8_lossy(&venv.stderr).trim()
        );
        return Ok(());
    }
    let python = String::from_utf8_lossy(&venv.stdout).lines().last().unwrap_or_default().trim().to_string();
    // SimPy is ~100× slower: a tenth of the customers keeps its run under a minute, and its
    // rate does not depend on the count once past warm-up.
    let theirs_n = (customers / 10).max(10_000);
    let out = Command::new(&python)
        .arg(root.join("python/simpy_mmc.py"))
        .args(["--customers", &theirs_n.to_string()])
        .output()?;
    if !out.status.success() {
        return Err(format!("simpy_mmc.py failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let j: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let theirs = j["customers_per_s"].as_f64().ok_or("no customers_per_s")?;
    let theirs_mean_s = j["mean_response_s"].as_f64().ok_or("no mean_response_s")?;
    println!(
        "SimPy {}: {} customers in {:.3} s: {:.1} k customers/s, mean response {theirs_mean_s:.4} s",
        j["simpy"].as_str().unwrap_or("?"),
        j["customers"],
        j["wall_s"].as_f64().unwrap_or(f64::NAN),
        theirs / 1e3
    );
    assert!((theirs_mean_s - ERLANG_C_S).abs() / ERLANG_C_S < 0.1, "SimPy's M/M/4 is off: {theirs_mean_s}");
    let ratio = ours / theirs;
    println!(
        "ratio: servesim runs {ratio:.0}× SimPy's rate on one core (goal ≥ {GOAL:.0}×: {})",
        if ratio >= GOAL { "met" } else { "missed" }
    );
    Ok(())
}
