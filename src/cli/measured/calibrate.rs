//! `servesim calibrate`.

use crate::cli::common::ScenarioArgs;
use clap::Args;
use servesim::experiment::{CalibrateOptions, calibrate};
use std::path::PathBuf;

/// Measure the real server's own costs on this machine and write a calibration file.
///
/// Starts the real server on the scenario's CPUs with one thread and the GIL (so every lock
/// operation is paid) and the scenario's emulated work, sends the scenario's request from one
/// client, and splits each response's time, the nominal emulated work taken out: the model's
/// matmuls (lock-free per token), the rest of the model (lock-held per token), the event
/// loop's CPU (HTTP, JSON, dispatch) and the rest of the round trip (client, loopback,
/// wake-ups: `rtt_ms`). Then times the real lock's hand-off between threads and the batched
/// step at several batch sizes. Every cost is kept as its samples. Scenarios use it with
/// `cost.calibration = "PATH"` (or `--set`).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  servesim calibrate models/validate.toml --out validation/calibration.json\n  \
    servesim simulate models/validate.toml --set cost.calibration='\"../validation/calibration.json\"'"
)]
pub struct CalibrateArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,

    /// Where to write the calibration (JSON).
    #[arg(long, default_value = "validation/calibration.json")]
    out: PathBuf,

    /// Requests measured from one client.
    #[arg(long, default_value_t = 300)]
    requests: u32,

    /// The Mini-GPT directory (default: models/mini-gpt).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
}

/// Runs `servesim calibrate`.
pub fn run(args: CalibrateArgs) -> anyhow::Result<()> {
    let sc = args.scenario.load(&[])?;
    let opts =
        CalibrateOptions { requests: args.requests, model_dir: args.model, ..CalibrateOptions::default() };
    let cal = calibrate(&sc, &opts, |stage| eprintln!("calibrate: {stage}…"))?;
    write(&cal, &args.out)?;
    print_summary(&cal, &args.out);
    Ok(())
}

/// Writes a calibration as pretty JSON, creating the directory.
pub fn write(cal: &servesim::scenario::Calibration, out: &std::path::Path) -> anyhow::Result<()> {
    Ok(servesim::experiment::write_calibration(cal, out)?)
}

/// One line per component: mean and p95 of its samples.
pub fn print_summary(cal: &servesim::scenario::Calibration, out: &std::path::Path) {
    let stat = |s: &[f64]| {
        let mut v = s.to_vec();
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        (mean, v.get((v.len() * 95 / 100).min(v.len().saturating_sub(1))).copied().unwrap_or(0.0))
    };
    println!("calibration written to {} ({} on {})", out.display(), cal.machine.date, cal.machine.cpu_model);
    for (name, s) in [
        ("loop_in_ms", &cal.loop_in_ms),
        ("loop_out_ms", &cal.loop_out_ms),
        ("token_locked_ms", &cal.token_locked_ms),
        ("token_free_ms", &cal.token_free_ms),
        ("rtt_ms", &cal.rtt_ms),
        ("prefill_locked_ms", &cal.prefill_locked_ms),
        ("prefill_free_ms", &cal.prefill_free_ms),
    ] {
        let (m, p95) = stat(s);
        println!("  {name:<18} mean {m:>8.4} ms   p95 {p95:>8.4} ms   ({} samples)", s.len());
    }
    println!("  kernels_per_token  {}", cal.kernels_per_token);
    println!("  handoff_us         {:.1} µs", cal.handoff_us);
    let rounds = |r: &Option<servesim::stats::Rounds>| {
        r.as_ref().map_or(String::new(), |r| {
            format!(
                "  ({} rounds, spread {:.0}%{})",
                r.rounds.len(),
                r.spread * 100.0,
                if r.stable { "" } else { ", UNSTABLE" }
            )
        })
    };
    let (wake, _) = stat(&cal.wake_us);
    println!("  wake_us            mean {wake:.1} µs{}", rounds(&cal.wake_rounds));
    println!("  vain_wake_us       {:.2} µs{}", cal.vain_wake_us, rounds(&cal.vain_wake_rounds));
    if !cal.unstable.is_empty() {
        println!(
            "  UNSTABLE: the rounds of {} disagree beyond their bound after re-measuring; predictions \
             resting on them carry that spread",
            cal.unstable.join(", ")
        );
    }
    for b in &cal.batch_steps {
        let (l, _) = stat(&b.locked_ms);
        let (f, _) = stat(&b.free_ms);
        println!("  batch {:>3}: step {:>7.3} ms (locked {l:.3}, free {f:.3})", b.batch, l + f);
    }
}
