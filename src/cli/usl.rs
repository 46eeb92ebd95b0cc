//! `servesim fit-usl`.

use clap::Args;
use servesim::experiment::{UslReport, fit_usl_csv};
use std::path::PathBuf;

/// Fit the Universal Scalability Law to a throughput-vs-concurrency table.
///
/// X(N) = λN / (1 + σ(N−1) + κN(N−1)): σ is contention (a serial fraction), κ coherency
/// (crosstalk that makes throughput fall past a peak at N* = √((1−σ)/κ)). Reads any CSV with
/// a concurrency and a throughput column — `servesim sweep` output (`clients.users`,
/// `throughput_rps`) works as is — and prints λ, σ, κ with 95% confidence intervals, R² and
/// the peak.
///
/// Reading σ: for a lock held a fraction s of each request's work, Amdahl's law gives σ ≈ s
/// as long as the lock's hand-offs are free. Where the USL misleads: a closed system with a
/// lock does not follow its curve — throughput climbs to 1/(lock-held time) and stays flat,
/// which the USL can only imitate with a κ that predicts a fall that never comes; hand-off
/// costs and convoys show up as κ; and points past saturation with think time bend the fit.
/// Use the simulator for such systems, and the USL as a summary.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    servesim sweep models/seed-sync.toml --sweep clients.users=1,2,4,8,16,32,64 --out plots/users\n  \
    servesim fit-usl plots/users/sweep.csv")]
pub struct UslArgs {
    /// CSV file with a header row.
    csv: PathBuf,

    /// Concurrency column (default: clients.users, users, concurrency, n or N).
    #[arg(long)]
    x: Option<String>,

    /// Throughput column (default: throughput_rps, throughput, x or X).
    #[arg(long)]
    y: Option<String>,

    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `servesim fit-usl`.
pub fn run(args: UslArgs) -> anyhow::Result<()> {
    let r = fit_usl_csv(&args.csv, args.x.as_deref(), args.y.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", summary(&r));
    }
    Ok(())
}

fn summary(r: &UslReport) -> String {
    let (p, ci) = (&r.fit.params, &r.fit.ci95);
    let mut s = format!("USL fit of {} vs {} ({} points)\n", r.y, r.x, r.fit.points);
    s.push_str(&format!("  λ = {:.6} ± {:.6}   (throughput of one)\n", p.lambda, ci.lambda));
    s.push_str(&format!("  σ = {:.6} ± {:.6}   (contention)\n", p.sigma, ci.sigma));
    s.push_str(&format!("  κ = {:.8} ± {:.8}   (coherency)\n", p.kappa, ci.kappa));
    s.push_str(&format!("  R² = {:.5}\n", r.fit.r_squared));
    if r.peak_concurrency.is_finite() {
        s.push_str(&format!("  peak at N* = {:.1}, X(N*) = {:.4}\n", r.peak_concurrency, r.peak_throughput));
    } else {
        s.push_str("  no peak: κ ≤ 0, throughput approaches λ/σ\n");
    }
    s.push_str(&format!("\n  {:>10} {:>14} {:>14} {:>9}\n", "N", "measured", "USL", "error"));
    for &(n, x) in &r.points {
        let m = p.throughput(n);
        s.push_str(&format!("  {n:>10} {x:>14.4} {m:>14.4} {:>8.2}%\n", 100.0 * (m - x) / x));
    }
    s
}
