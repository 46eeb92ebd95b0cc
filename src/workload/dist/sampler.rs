//! Drawing values: a [`Sampler`] is built once from a valid [`Dist`] and draws from any
//! `rand::Rng`.

use super::{Dist, DistError};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, Exp, Gamma, LogNormal};
use std::fmt;
use std::sync::Arc;

impl Dist {
    /// A sampler for this distribution.
    ///
    /// # Panics
    ///
    /// If the distribution is not valid. [`Dist::validate`] builds the same sampler, so
    /// this cannot happen to a validated distribution — every one of a loaded scenario.
    pub fn sampler(&self) -> Sampler {
        match self.try_sampler() {
            Ok(s) => s,
            Err(e) => panic!("sampler of an unvalidated distribution {self:?}: {e}"),
        }
    }

    /// A sampler for this distribution, or why `rand_distr` cannot build one.
    pub fn try_sampler(&self) -> Result<Sampler, DistError> {
        let kind = self.kind();
        let fail = |e: &dyn fmt::Display| DistError::Sampler { kind, reason: e.to_string() };
        let inner = match *self {
            Dist::Const(v) => Inner::Const(v),
            Dist::Exponential { mean } => Inner::Exp(Exp::new(1.0 / mean).map_err(|e| fail(&e))?),
            Dist::LogNormal { mean, cv } => {
                Inner::LogNormal(LogNormal::from_mean_cv(mean, cv).map_err(|e| fail(&e))?)
            }
            Dist::Gamma { mean, cv } => {
                let shape = 1.0 / (cv * cv);
                Inner::Gamma(Gamma::new(shape, mean / shape).map_err(|e| fail(&e))?)
            }
            Dist::Uniform { min, max } => Inner::Uniform(min, max - min),
            // An empty sample set has nothing to draw: its file was never read.
            Dist::Empirical { ref samples, .. } if samples.is_empty() => {
                return Err(DistError::Missing { kind, param: "samples (read its file first)" });
            }
            Dist::Empirical { ref samples, .. } => Inner::Empirical(samples.clone()),
            Dist::Sum(ref parts) => {
                Inner::Sum(parts.iter().map(Dist::try_sampler).collect::<Result<_, _>>()?)
            }
        };
        Ok(Sampler(inner))
    }
}

/// Draws values of a [`Dist`].
#[derive(Debug, Clone)]
pub struct Sampler(Inner);

#[derive(Debug, Clone)]
enum Inner {
    Const(f64),
    Exp(Exp<f64>),
    LogNormal(LogNormal<f64>),
    Gamma(Gamma<f64>),
    Uniform(f64, f64),
    Empirical(Arc<[f64]>),
    Sum(Vec<Sampler>),
}

impl Sampler {
    /// One draw.
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match &self.0 {
            Inner::Const(v) => *v,
            Inner::Exp(d) => d.sample(rng),
            Inner::LogNormal(d) => d.sample(rng),
            Inner::Gamma(d) => d.sample(rng),
            Inner::Uniform(lo, width) => lo + width * rng.random::<f64>(),
            Inner::Empirical(s) => s[rng.random_range(0..s.len())],
            Inner::Sum(parts) => parts.iter().map(|p| p.sample(rng)).sum(),
        }
    }

    /// Whether this sampler never draws anything but a constant (and so uses no randomness).
    pub fn is_const(&self) -> bool {
        matches!(self.0, Inner::Const(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// Sample means of 200k draws stay within 2% of the mean for these cvs.
    const MEAN_TOL: f64 = 0.02;

    #[test]
    fn edges_of_the_limits_sample() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        let (lo, hi) = (Dist::MIN_CV, Dist::MAX_CV);
        let mut edges = vec![Dist::Const(Dist::MAX_VALUE), Dist::Uniform { min: 0.0, max: Dist::MAX_VALUE }];
        for mean in [1e-300, 1e-9, 1.0, Dist::MAX_VALUE] {
            edges.push(Dist::Exponential { mean });
            for cv in [lo, 1.0, hi] {
                edges.extend([Dist::LogNormal { mean, cv }, Dist::Gamma { mean, cv }]);
            }
        }
        for d in edges {
            d.validate().unwrap_or_else(|e| panic!("{d:?}: {e}"));
            let s = d.try_sampler().unwrap();
            for _ in 0..1000 {
                let x = s.sample(&mut rng);
                assert!(x.is_finite() && x >= 0.0, "{d:?} drew {x}");
            }
        }
    }

    #[test]
    fn an_unread_samples_file_cannot_be_sampled_but_is_valid_until_read() {
        let d = Dist::Empirical { file: Some("later.csv".into()), samples: Arc::from([]) };
        assert_eq!(d.validate(), Ok(()));
        assert!(d.try_sampler().unwrap_err().to_string().contains("read its file first"));
    }

    #[test]
    fn sample_means_match() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        for d in [
            Dist::Exponential { mean: 2.0 },
            Dist::LogNormal { mean: 2.0, cv: 0.5 },
            Dist::Gamma { mean: 2.0, cv: 1.5 },
            Dist::Uniform { min: 1.0, max: 3.0 },
        ] {
            let s = d.sampler();
            let n = 200_000;
            let m = (0..n).map(|_| s.sample(&mut rng)).sum::<f64>() / n as f64;
            assert!((m - 2.0).abs() / 2.0 < MEAN_TOL, "{d:?}: {m}");
        }
    }
}
