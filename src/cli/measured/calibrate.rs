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

/// Where the calibration went, and one line per component.
pub fn print_summary(cal: &servesim::scenario::Calibration, out: &std::path::Path) {
    println!("calibration written to {} ({} on {})", out.display(), cal.machine.date, cal.machine.cpu_model);
    print!("{}", cal.summary());
}
