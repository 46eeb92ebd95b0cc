//! `servesim merge`: joins the shard outputs of one sweep into the whole sweep.

use super::grid::{MAX_POINTS, Shard};
use super::sweep::SweepOutput;
use std::collections::BTreeSet;
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
    #[error(
        "shards {} of {count} are missing; run them (--shard i/{count}) and merge again",
        listed(missing)
    )]
    Missing {
        /// Missing indices.
        missing: Vec<usize>,
        /// Number of shards.
        count: usize,
    },
    /// A shard file is not as `servesim sweep` wrote it: its shard or its points do not add
    /// up (a truncated or edited file).
    #[error("{path}: {message}; run that shard again")]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// What does not add up.
        message: String,
    },
}

/// Most indices a message lists.
const LISTED: usize = 10;

/// `[1, 2]`, or the first [`LISTED`] and how many in all.
fn listed(indices: &[usize]) -> String {
    match indices.len() {
        n if n > LISTED => format!("{:?} … ({n} in all)", &indices[..LISTED]),
        _ => format!("{indices:?}"),
    }
}

fn read(input: &Path) -> Result<(PathBuf, SweepOutput), MergeError> {
    let path = if input.is_dir() { input.join("sweep.json") } else { input.to_owned() };
    let err = |message: String| MergeError::Read { path: path.clone(), message };
    let meta = std::fs::metadata(&path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file; give a shard's output directory or its sweep.json".into()));
    }
    let text = crate::input::read_text(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::FileTooLarge => {
            err(format!("{e}; give the sweep.json that `servesim sweep --shard` wrote"))
        }
        _ => err(e.to_string()),
    })?;
    let out = serde_json::from_str(&text).map_err(|e| err(format!("not a sweep output: {e}")))?;
    Ok((path, out))
}

/// Checks that a shard holds exactly the points `servesim sweep` gives it: those whose
/// index is its own modulo the shard count, in order.
fn check_shard(path: &Path, s: &SweepOutput) -> Result<(), MergeError> {
    let bad = |message: String| Err(MergeError::Corrupt { path: path.to_owned(), message });
    let Shard { index, count } = s.shard;
    if index >= count {
        return bad(format!("shard {index}/{count} is no shard: INDEX must be below COUNT"));
    }
    let total = s.sweep.points;
    if total > MAX_POINTS {
        return bad(format!("a sweep of {total} points is more than the {MAX_POINTS} a sweep may have"));
    }
    let expected = (index..total).step_by(count);
    if s.points.len() != expected.len() {
        let (n, want) = (s.points.len(), expected.len());
        return bad(format!(
            "holds {n} points, but shard {index}/{count} of a {total}-point sweep has {want}"
        ));
    }
    if let Some((p, want)) = s.points.iter().zip(expected).find(|(p, want)| p.index != *want) {
        return bad(format!("holds point {} where point {want} belongs", p.index));
    }
    check_grid(s).map_err(|message| MergeError::Corrupt { path: path.to_owned(), message })
}

/// Checks that a shard's grid makes its sweep's size, and that each of its points carries
/// the parameters the grid gives its index: the CSV's columns and the plots are laid out
/// from the grid, so a point that disagrees would land in the wrong cell or none.
fn check_grid(s: &SweepOutput) -> Result<(), String> {
    let (grid, total) = (&s.sweep.grid, s.sweep.points);
    let size: u128 = grid.axes.iter().map(|a| a.values.len() as u128).product();
    if grid.axes.is_empty() || size != total as u128 {
        return Err(format!(
            "its grid has {size} points over {} axes, but its sweep {total}",
            grid.axes.len()
        ));
    }
    for p in &s.points {
        let want: Vec<(String, String)> =
            grid.point(p.index).into_iter().map(|o| (o.path, super::grid::show(&o.value))).collect();
        if p.params != want {
            return Err(format!(
                "point {} has parameters {}, but the grid gives it {}",
                p.index,
                super::sweep::label(&p.params),
                super::sweep::label(&want)
            ));
        }
    }
    Ok(())
}

/// Reads shard outputs and joins them; every shard of one sweep that holds points must be
/// present once (a shard past the grid's last point holds none and may be left out).
pub fn merge(inputs: &[PathBuf]) -> Result<SweepOutput, MergeError> {
    let shards: Vec<(PathBuf, SweepOutput)> = inputs.iter().map(|p| read(p)).collect::<Result<_, _>>()?;
    let (first_path, first) = shards.first().ok_or(MergeError::NoInputs)?;
    let (info, count) = (first.sweep.clone(), first.shard.count);
    let mut seen = BTreeSet::new();
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
        if s.sweep != info {
            return Err(MergeError::Corrupt {
                path: path.clone(),
                message: format!(
                    "its sweep (scenario, grid or size) differs from {}'s under the same sweep id",
                    first_path.display()
                ),
            });
        }
        if s.shard.count != count {
            let (index, c) = (s.shard.index, s.shard.count);
            return Err(MergeError::ShardCount { path: path.clone(), index, count: c, expected: count });
        }
        check_shard(path, s)?;
        if !seen.insert(s.shard.index) {
            return Err(MergeError::Duplicate(s.shard.index));
        }
    }
    let missing: Vec<usize> = (0..count.min(info.points)).filter(|i| !seen.contains(i)).collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing { missing, count });
    }
    let mut points: Vec<_> = shards.into_iter().flat_map(|(_, s)| s.points).collect();
    points.sort_by_key(|p| p.index);
    Ok(SweepOutput { sweep: info, shard: Shard::default(), points })
}
