//! `servesim merge`: joins the shard outputs of one sweep into the whole sweep.

use super::grid::Shard;
use super::sweep::SweepOutput;
use std::path::{Path, PathBuf};

/// Why shards cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no inputs: give the shard output directories (or their sweep.json files)")]
    NoInputs,
    /// A shard file could not be read or parsed.
    #[error("cannot read shard {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Shards of different sweeps.
    #[error(
        "{path} is from sweep {other} ({other_scenario}), not {id} ({scenario}): merge only shards of one sweep"
    )]
    DifferentSweeps {
        /// The offending file.
        path: PathBuf,
        /// The first shard's sweep id.
        id: String,
        /// The first shard's scenario.
        scenario: String,
        /// This file's sweep id.
        other: String,
        /// This file's scenario.
        other_scenario: String,
    },
    /// Shards cut the grid differently.
    #[error("{path} is shard {index}/{count}, but the first input has {expected} shards")]
    ShardCount {
        /// The offending file.
        path: PathBuf,
        /// Its index.
        index: usize,
        /// Its count.
        count: usize,
        /// The first input's count.
        expected: usize,
    },
    /// The same shard given twice.
    #[error("shard {0} is given twice")]
    Duplicate(usize),
    /// Some shards are missing.
    #[error("shards {missing:?} of {count} are missing; run them (--shard i/{count}) and merge again")]
    Missing {
        /// Missing indices.
        missing: Vec<usize>,
        /// Number of shards.
        count: usize,
    },
}

fn read(input: &Path) -> Result<(PathBuf, SweepOutput), MergeError> {
    let path = if input.is_dir() { input.join("sweep.json") } else { input.to_owned() };
    let err = |message: String| MergeError::Read { path: path.clone(), message };
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    let out = serde_json::from_str(&text).map_err(|e| err(format!("not a sweep output: {e}")))?;
    Ok((path, out))
}

/// Reads shard outputs and joins them; every shard of one sweep must be present once.
pub fn merge(inputs: &[PathBuf]) -> Result<SweepOutput, MergeError> {
    let shards: Vec<(PathBuf, SweepOutput)> = inputs.iter().map(|p| read(p)).collect::<Result<_, _>>()?;
    let (_, first) = shards.first().ok_or(MergeError::NoInputs)?;
    let (info, count) = (first.sweep.clone(), first.shard.count);
    let mut seen = vec![false; count];
    for (path, s) in &shards {
        if s.sweep.id != info.id {
            return Err(MergeError::DifferentSweeps {
                path: path.clone(),
                id: info.id.clone(),
                scenario: info.scenario.clone(),
                other: s.sweep.id.clone(),
                other_scenario: s.sweep.scenario.clone(),
            });
        }
        if s.shard.count != count {
            let (index, c) = (s.shard.index, s.shard.count);
            return Err(MergeError::ShardCount { path: path.clone(), index, count: c, expected: count });
        }
        if std::mem::replace(&mut seen[s.shard.index], true) {
            return Err(MergeError::Duplicate(s.shard.index));
        }
    }
    let missing: Vec<usize> = seen.iter().enumerate().filter(|(_, s)| !**s).map(|(i, _)| i).collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing { missing, count });
    }
    let mut points: Vec<_> = shards.into_iter().flat_map(|(_, s)| s.points).collect();
    points.sort_by_key(|p| p.index);
    Ok(SweepOutput { sweep: info, shard: Shard::default(), points })
}
