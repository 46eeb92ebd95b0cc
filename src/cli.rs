//! Command-line interface: one file per subcommand under `cli/`.

mod capacity;
mod common;
#[cfg(feature = "load")]
mod load;
#[cfg(all(feature = "server", feature = "load"))]
mod measured;
#[cfg(feature = "model")]
mod model;
#[cfg(feature = "server")]
mod serve;
mod simulate;
mod sweep;
mod usl;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Predict how a model-serving HTTP service behaves under load, and check it against a real server.
#[derive(Debug, Parser)]
#[command(name = "servesim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Each variant gives only its one-line `about` for `servesim --help`: a doc comment here
// would also replace the long text of its argument struct, which `servesim X --help` shows.
#[derive(Debug, Subcommand)]
enum Command {
    #[command(about = "Predict throughput and latency with the discrete-event simulator.")]
    Simulate(simulate::SimulateArgs),
    #[command(about = "Simulate a grid of configurations in parallel (CSV, JSON, plots; shardable).")]
    Sweep(sweep::SweepArgs),
    #[command(about = "Join the shard outputs of one sweep.")]
    Merge(sweep::MergeArgs),
    #[command(about = "Find the cheapest configuration that holds a rate within a latency SLO.")]
    Capacity(capacity::CapacityArgs),
    #[command(about = "Fit the Universal Scalability Law to a throughput-vs-concurrency CSV.")]
    FitUsl(usl::UslArgs),
    #[command(about = "Inspect or (re)generate the Mini-GPT weights.")]
    #[cfg(feature = "model")]
    Model(model::ModelArgs),
    #[command(about = "Run the real server (axum + the Mini-GPT) with a scenario's knobs.")]
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
    // measure, calibrate, validate.
    #[command(flatten)]
    #[cfg(all(feature = "server", feature = "load"))]
    Measured(measured::Command),
    #[command(about = "Drive any HTTP server with a closed loop, an open loop or a burst, and measure it.")]
    #[cfg(feature = "load")]
    Load(load::LoadArgs),
}

/// Parses the command line, runs the subcommand and maps its error to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Simulate(args) => simulate::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Merge(args) => sweep::run_merge(args),
        Command::Capacity(args) => capacity::run(args),
        Command::FitUsl(args) => usl::run(args),
        #[cfg(feature = "model")]
        Command::Model(args) => model::run(args),
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run(args),
        #[cfg(all(feature = "server", feature = "load"))]
        Command::Measured(command) => measured::run(command),
        #[cfg(feature = "load")]
        Command::Load(args) => load::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", message(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", skipping a cause whose text the message before it
/// already ends with (errors that print their source themselves).
fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
