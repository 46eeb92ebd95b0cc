//! Arguments shared by the commands that read a scenario.

use clap::Args;
use servesim::scenario::{Override, Scenario, ScenarioError};
use std::path::{Path, PathBuf};

/// A scenario file and overrides.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// Scenario file (TOML), e.g. models/seed-sync.toml.
    pub file: PathBuf,

    /// Override any field: --set worker.threads=8 --set worker.lock=gil
    /// (values are TOML: numbers, "strings" or bare words, { dist = "exponential", mean = 2 }).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<Override>,
}

impl ScenarioArgs {
    /// Loads and validates the scenario with the overrides, then `extra` ones.
    pub fn load(&self, extra: &[Override]) -> anyhow::Result<Scenario> {
        let all: Vec<Override> = self.set.iter().chain(extra).cloned().collect();
        load_scenario(&self.file, &all)
    }
}

/// Loads and validates `file` with `overrides`; an error names the file once.
pub fn load_scenario(file: &std::path::Path, overrides: &[Override]) -> anyhow::Result<Scenario> {
    Scenario::load(file, overrides).map_err(|e| match e {
        // These already name the file.
        ScenarioError::Read { .. } | ScenarioError::Syntax { .. } => anyhow::Error::new(e),
        other => anyhow::Error::new(other).context(format!("in scenario {}", file.display())),
    })
}

/// An override built from a dedicated flag (`--seed 7` is `--set run.seed=7`).
pub fn flag_override(path: &str, value: impl Into<toml::Value>) -> Override {
    Override { path: path.to_owned(), value: value.into() }
}

/// Checks, before any work, that directory `dir` of `flag` can take the output written at
/// the end; the error names the flag, the path in the way and the fix.
pub fn check_out_dir(flag: &str, dir: &Path) -> anyhow::Result<()> {
    servesim::experiment::report::check_dir(dir).map_err(|e| {
        anyhow::anyhow!("{flag} {}: {e}; give a directory that can be created and written", dir.display())
    })
}

/// Checks, before any work, that file `path` of `flag` can be written at the end; the error
/// names the flag, the path in the way and the fix.
#[cfg(all(feature = "server", feature = "load"))]
pub fn check_out_file(flag: &str, path: &Path) -> anyhow::Result<()> {
    servesim::experiment::report::check_file(path)
        .map_err(|e| anyhow::anyhow!("{flag} {}: {e}; give a file path that can be written", path.display()))
}
