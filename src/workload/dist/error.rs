//! Why a distribution is invalid or could not be loaded.

use super::form::KINDS;
use std::path::PathBuf;

/// Why a distribution is invalid or could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DistError {
    /// A parameter is out of range.
    #[error("{kind} needs {param} {rule}, got {}", show(*.got))]
    Param {
        /// The distribution kind.
        kind: &'static str,
        /// The offending parameter.
        param: &'static str,
        /// What it must satisfy.
        rule: &'static str,
        /// The value given.
        got: f64,
    },
    /// `dist = "…"` names no known kind.
    #[error("unknown distribution `{0}`; expected one of: {kinds}", kinds = KINDS.join(", "))]
    UnknownKind(String),
    /// A parameter the kind needs is missing.
    #[error("{kind} needs `{param}`")]
    Missing {
        /// The distribution kind.
        kind: &'static str,
        /// The missing parameter.
        param: &'static str,
    },
    /// A parameter of another kind was given (`mean` on a `uniform`).
    #[error("{kind} does not take `{param}`; it takes {takes}")]
    Extra {
        /// The distribution kind.
        kind: &'static str,
        /// The parameter given.
        param: &'static str,
        /// The parameters it takes.
        takes: &'static str,
    },
    /// A samples file could not be read or parsed.
    #[error("cannot read samples from {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The parameters are each in range, but `rand_distr` cannot build a sampler from them.
    #[error("{kind} cannot be sampled with these parameters ({reason}); change mean or cv")]
    Sampler {
        /// The distribution kind.
        kind: &'static str,
        /// `rand_distr`'s reason.
        reason: String,
    },
}

/// A number as an error shows it: plain when short, in exponent form when huge or tiny
/// (`1e300`, not its 301 digits).
fn show(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-3..1e6).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}
