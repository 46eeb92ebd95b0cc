//! Distributions of a non-negative quantity (a duration in the unit its field names, or a
//! count), as written in a scenario file:
//!
//! ```toml
//! think_ms = 250                                          # constant
//! token_free_ms = { dist = "exponential", mean = 2.0 }
//! token_locked_ms = { dist = "lognormal", mean = 1.5, cv = 0.3 }
//! loop_in_ms = { dist = "gamma", mean = 0.2, cv = 2.0 }
//! new_tokens = { dist = "uniform", min = 10, max = 30 }
//! request_free_ms = { dist = "empirical", file = "samples.csv" }   # one value per line
//! request_free_ms = { dist = "empirical", samples = [1.0, 1.2, 0.9] }
//! request_free_ms = { dist = "sum", of = [0.5, { dist = "exponential", mean = 1.0 }] }
//! ```
//!
//! Samplers come from `rand_distr`; they are built once and draw from any `rand::Rng`.

mod check;
mod error;
mod form;
mod sampler;
mod samples;

pub use error::DistError;
pub use sampler::Sampler;
pub use samples::read_samples;

use std::path::PathBuf;
use std::sync::Arc;

/// A distribution of a non-negative value.
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    /// Always `value`.
    Const(f64),
    /// Exponential with the given mean.
    Exponential {
        /// Mean.
        mean: f64,
    },
    /// Log-normal with the given mean and coefficient of variation (σ/μ).
    LogNormal {
        /// Mean.
        mean: f64,
        /// Coefficient of variation.
        cv: f64,
    },
    /// Gamma with the given mean and coefficient of variation (shape = 1/cv²).
    Gamma {
        /// Mean.
        mean: f64,
        /// Coefficient of variation.
        cv: f64,
    },
    /// Uniform on `[min, max]`.
    Uniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// Uniform choice among recorded samples (e.g. from a calibration run).
    Empirical {
        /// The file the samples came from, relative to the scenario file, if any.
        file: Option<PathBuf>,
        /// The samples; filled from `file` by [`Dist::load_files`].
        samples: Arc<[f64]>,
    },
    /// The sum of independent draws of several distributions (e.g. a calibrated cost plus
    /// emulated work).
    Sum(Vec<Dist>),
}

impl Dist {
    /// The name used in `dist = "…"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Dist::Const(_) => "const",
            Dist::Exponential { .. } => "exponential",
            Dist::LogNormal { .. } => "lognormal",
            Dist::Gamma { .. } => "gamma",
            Dist::Uniform { .. } => "uniform",
            Dist::Empirical { .. } => "empirical",
            Dist::Sum(_) => "sum",
        }
    }

    /// The mean.
    pub fn mean(&self) -> f64 {
        match self {
            Dist::Const(v) => *v,
            Dist::Exponential { mean } | Dist::LogNormal { mean, .. } | Dist::Gamma { mean, .. } => *mean,
            Dist::Uniform { min, max } => (min + max) / 2.0,
            Dist::Empirical { samples, .. } => mean_of(samples),
            Dist::Sum(parts) => parts.iter().map(Dist::mean).sum(),
        }
    }

    /// The squared coefficient of variation, Var/mean² (0 when the mean is 0).
    pub fn scv(&self) -> f64 {
        let m = self.mean();
        if m == 0.0 {
            return 0.0;
        }
        let var = match self {
            Dist::Const(_) => 0.0,
            Dist::Exponential { mean } => mean * mean,
            Dist::LogNormal { mean, cv } | Dist::Gamma { mean, cv } => (mean * cv).powi(2),
            Dist::Uniform { min, max } => (max - min).powi(2) / 12.0,
            Dist::Empirical { samples, .. } => {
                samples.iter().map(|s| (s - m).powi(2)).sum::<f64>() / samples.len() as f64
            }
            // Independent parts: variances add.
            Dist::Sum(parts) => parts.iter().map(|p| p.scv() * p.mean().powi(2)).sum(),
        };
        var / (m * m)
    }

    /// Whether every draw is 0.
    pub fn is_zero(&self) -> bool {
        match self {
            Dist::Const(v) => *v == 0.0,
            Dist::Sum(parts) => parts.iter().all(Dist::is_zero),
            _ => false,
        }
    }

    /// `self + other` (independent draws), dropping parts that are always 0.
    pub fn plus(self, other: Dist) -> Dist {
        match (self.is_zero(), other.is_zero()) {
            (_, true) => self,
            (true, false) => other,
            (false, false) => Dist::Sum(vec![self, other]),
        }
    }
}

fn mean_of(samples: &[f64]) -> f64 {
    if samples.is_empty() { 0.0 } else { samples.iter().sum::<f64>() / samples.len() as f64 }
}

/// `x = …` of a TOML line, as a scenario file would give it.
#[cfg(test)]
fn parse(text: &str) -> Result<Dist, String> {
    #[derive(serde::Deserialize)]
    struct W {
        x: Dist,
    }
    toml::from_str::<W>(text).map(|w| w.x).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn sums_add_means_and_variances() {
        let d = parse("x = { dist = \"sum\", of = [1.0, { dist = \"exponential\", mean = 2.0 }] }").unwrap();
        assert_eq!(d.mean(), 3.0);
        assert!((d.scv() - 4.0 / 9.0).abs() < 1e-12);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let s = d.sampler();
        assert!((0..1000).all(|_| s.sample(&mut rng) >= 1.0));
        assert!(parse("x = { dist = \"sum\" }").unwrap_err().contains("needs `of`"));
    }

    #[test]
    fn scv_of_known_distributions() {
        assert_eq!(Dist::Const(4.0).scv(), 0.0);
        assert!((Dist::Exponential { mean: 3.0 }.scv() - 1.0).abs() < 1e-12);
        assert!((Dist::Gamma { mean: 3.0, cv: 0.5 }.scv() - 0.25).abs() < 1e-12);
    }
}
