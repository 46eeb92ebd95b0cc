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
                println!("{}", serde_json::to_string_pretty(&info_json(&m))?);
            } else {
                print_info(&dir, &m);
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

fn info_json(m: &Model) -> serde_json::Value {
    let c = m.config();
    serde_json::json!({
        "config": c,
        "parameters": c.param_count(),
        "weight_bytes": m.weight_bytes(),
        "kernels_per_token": c.kernels_per_token(),
        "max_prompt_chars": m.max_prompt_chars(),
    })
}

fn print_info(dir: &std::path::Path, m: &Model) {
    let c = m.config();
    let (d, f) = (c.d_model, c.d_ff);
    let block = c.param_count_per_block();
    println!("Mini-GPT in {} (random weights: a compute load, not a language model)", dir.display());
    println!(
        "  vocab {}, d_model {d}, {} layers × {} heads, d_ff {f}, context {}",
        c.vocab, c.n_layer, c.n_head, c.context
    );
    println!(
        "  parameters: {} = token embedding {}·{d} (tied LM head) + {} blocks × {block} + final LayerNorm {}",
        c.param_count(),
        c.vocab,
        c.n_layer,
        2 * d
    );
    println!(
        "  weight memory: {} bytes ({:.1} KiB, f32)",
        m.weight_bytes(),
        m.weight_bytes() as f64 / 1024.0
    );
    println!("  matmul kernels per token: {}", c.kernels_per_token());
    println!("  longest prompt: {} characters", m.max_prompt_chars());
}
