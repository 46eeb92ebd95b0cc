//! Command-line interface: one file per subcommand under `cli/`.

mod common;
#[cfg(feature = "model")]
mod model;
mod simulate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Predict how a model-serving HTTP service behaves under load, and check it against a real server.
#[derive(Debug, Parser)]
#[command(name = "servesim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Predict throughput and latency with the discrete-event simulator.
    Simulate(simulate::SimulateArgs),
    /// Inspect or (re)generate the Mini-GPT weights.
    #[cfg(feature = "model")]
    Model(model::ModelArgs),
}

/// Parses the command line, runs the subcommand and maps its error to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Simulate(args) => simulate::run(args),
        #[cfg(feature = "model")]
        Command::Model(args) => model::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
