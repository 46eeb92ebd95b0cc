//! `servesim model info|init`.

use anyhow::Context;
use clap::{Args, Subcommand};
use servesim::gpt::{Config, Model};
use std::path::PathBuf;

/// Inspect or (re)generate the Mini-GPT weights.
#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Print the configuration, the parameter count and the weight memory.
    Info {
        /// Model directory (config.json + model.safetensors).
        #[arg(long, default_value = "models/mini-gpt")]
        dir: PathBuf,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Write random weights, drawn deterministically from a seed (the same seed gives the
    /// same file, bit for bit). The weights are random: the model is a realistic compute
    /// load, its text is not meaningful.
    Init {
        /// Seed of the weights.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Model directory to write.
        #[arg(long, default_value = "models/mini-gpt")]
        dir: PathBuf,
    },
}

/// Runs `servesim model`.
pub fn run(args: ModelArgs) -> anyhow::Result<()> {
    match args.command {
        ModelCommand::Info { dir, json } => {
            let m = Model::load(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m.info_json())?);
            } else {
                print!("{}", m.describe(&dir));
            }
        }
        ModelCommand::Init { seed, dir } => {
            let m = Model::init(&Config::default(), seed);
            m.save(&dir).with_context(|| format!("writing {}", dir.display()))?;
            println!(
                "wrote {} random parameters (seed {seed}) to {}",
                m.config().param_count(),
                dir.display()
            );
        }
    }
    Ok(())
}
