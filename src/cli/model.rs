//! `servesim model info|init`.

use clap::Args;

/// Arguments of `servesim model`.
#[derive(Debug, Args)]
pub struct ModelArgs {}

/// Runs `servesim model`.
pub fn run(_args: ModelArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
