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

use rand::{Rng, RngExt};
use rand_distr::{Distribution, Exp, Gamma, LogNormal};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The kinds a scenario may name in `dist = "…"`.
const KINDS: &[&str] = &["const", "exponential", "lognormal", "gamma", "uniform", "empirical", "sum"];

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

impl Dist {
    /// Largest mean a distribution may have, and largest value a `const`, `uniform` or
    /// `empirical` one may take, in its field's unit (ms for durations). 1e9 ms is 11.6 days,
    /// beyond any request; as 1e15 ns it stays four orders of magnitude below the 1.8e19 ns at
    /// which the simulator's u64 nanosecond clock wraps.
    pub const MAX_VALUE: f64 = 1e9;

    /// Smallest coefficient of variation of `lognormal` and `gamma`: below it a distribution is
    /// a constant for every purpose (write the constant), and gamma's shape 1/cv² stays ≤ 1e12,
    /// where `rand_distr` samples it exactly.
    pub const MIN_CV: f64 = 1e-6;

    /// Largest coefficient of variation of `lognormal` and `gamma`: far heavier tails than any
    /// measured service time (those have cv of order 0.1–10), and gamma's shape 1/cv² stays
    /// ≥ 1e-6, where its small-shape sampler returns finite draws.
    pub const MAX_CV: f64 = 1e3;

    /// Checks every parameter, then that a sampler can be built from them, so that
    /// [`Dist::sampler`] cannot fail on a valid distribution; the error says which
    /// parameter and what it must be. An `empirical` distribution whose file is not read
    /// yet is checked again by [`Dist::load_files`].
    pub fn validate(&self) -> Result<(), DistError> {
        self.check_params()?;
        if !self.awaits_files() {
            self.try_sampler()?;
        }
        Ok(())
    }

    fn check_params(&self) -> Result<(), DistError> {
        let check = |kind, param, ok: bool, rule, got: f64| match (ok, got.is_finite()) {
            (true, true) => Ok(()),
            // Infinity passes the lower bounds; the upper one (every parameter has one) fails.
            (true, false) => Err(DistError::Param { kind, param, rule: "≤ 1e9", got }),
            (false, _) => Err(DistError::Param { kind, param, rule, got }),
        };
        let kind = self.kind();
        let at_most = |param, v: f64| check(kind, param, v <= Dist::MAX_VALUE, "≤ 1e9", v);
        match *self {
            Dist::Const(v) => {
                check(kind, "value", v >= 0.0, "≥ 0", v)?;
                at_most("value", v)
            }
            Dist::Exponential { mean } => {
                check(kind, "mean", mean > 0.0, "> 0", mean)?;
                at_most("mean", mean)
            }
            Dist::LogNormal { mean, cv } | Dist::Gamma { mean, cv } => {
                check(kind, "mean", mean > 0.0, "> 0", mean)?;
                at_most("mean", mean)?;
                check(kind, "cv", (Dist::MIN_CV..=Dist::MAX_CV).contains(&cv), "in [1e-6, 1e3]", cv)
            }
            Dist::Uniform { min, max } => {
                check(kind, "min", min >= 0.0, "≥ 0", min)?;
                check(kind, "max", max >= min, "≥ min", max)?;
                at_most("max", max)
            }
            Dist::Empirical { ref samples, ref file } => {
                if samples.is_empty() && file.is_none() {
                    return Err(DistError::Missing { kind, param: "samples or file" });
                }
                let ok = |s: &f64| s.is_finite() && (0.0..=Dist::MAX_VALUE).contains(s);
                match samples.iter().find(|s| !ok(s)) {
                    Some(&bad) => check(kind, "samples", false, "finite, ≥ 0 and ≤ 1e9", bad),
                    None => Ok(()),
                }
            }
            Dist::Sum(ref parts) => {
                if parts.is_empty() {
                    return Err(DistError::Missing { kind, param: "of" });
                }
                parts.iter().try_for_each(Dist::check_params)?;
                at_most("mean", self.mean())
            }
        }
    }

    /// Whether an `empirical` part names a file whose samples are not read yet.
    fn awaits_files(&self) -> bool {
        match self {
            Dist::Empirical { file: Some(_), samples } => samples.is_empty(),
            Dist::Sum(parts) => parts.iter().any(Dist::awaits_files),
            _ => false,
        }
    }

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

    /// Reads the samples of an `empirical` distribution that names a file, relative to `base`.
    pub fn load_files(&mut self, base: &Path) -> Result<(), DistError> {
        match self {
            Dist::Empirical { file: Some(file), samples } => {
                let path = base.join(file.as_path());
                *samples = read_samples(&path)?.into();
                self.validate()
            }
            Dist::Sum(parts) => parts.iter_mut().try_for_each(|p| p.load_files(base)),
            _ => Ok(()),
        }
    }

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

fn mean_of(samples: &[f64]) -> f64 {
    if samples.is_empty() { 0.0 } else { samples.iter().sum::<f64>() / samples.len() as f64 }
}

/// Reads the first column of a CSV file as numbers: one value per line, blank lines and
/// `#` comments skipped, a first line that is not a number taken as a header.
pub fn read_samples(path: &Path) -> Result<Vec<f64>, DistError> {
    let err = |reason: String| DistError::File { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let field = line.split(',').next().unwrap_or("").trim();
        if field.is_empty() || field.starts_with('#') {
            continue;
        }
        match field.parse::<f64>() {
            Ok(v) => out.push(v),
            Err(_) if out.is_empty() && i == 0 => {} // header
            Err(_) => return Err(err(format!("line {}: `{field}` is not a number", i + 1))),
        }
    }
    if out.is_empty() {
        return Err(err("no samples".into()));
    }
    Ok(out)
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

impl Serialize for Dist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Dist::Const(v) = self {
            return s.serialize_f64(*v);
        }
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("dist", self.kind())?;
        match self {
            Dist::Const(_) => unreachable!("handled above"),
            Dist::Exponential { mean } => map.serialize_entry("mean", mean)?,
            Dist::LogNormal { mean, cv } | Dist::Gamma { mean, cv } => {
                map.serialize_entry("mean", mean)?;
                map.serialize_entry("cv", cv)?;
            }
            Dist::Uniform { min, max } => {
                map.serialize_entry("min", min)?;
                map.serialize_entry("max", max)?;
            }
            Dist::Empirical { file: Some(f), .. } => map.serialize_entry("file", f)?,
            Dist::Empirical { samples, .. } => map.serialize_entry("samples", &samples[..])?,
            Dist::Sum(parts) => map.serialize_entry("of", parts)?,
        }
        map.end()
    }
}

/// The table form, before it is checked against its kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    dist: String,
    value: Option<f64>,
    mean: Option<f64>,
    cv: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    file: Option<PathBuf>,
    samples: Option<Vec<f64>>,
    of: Option<Vec<Dist>>,
}

impl Table {
    fn into_dist(self) -> Result<Dist, DistError> {
        let need = |v: Option<f64>, kind, param| v.ok_or(DistError::Missing { kind, param });
        let dist = match self.dist.as_str() {
            "const" => Dist::Const(need(self.value.or(self.mean), "const", "value")?),
            "exponential" => Dist::Exponential { mean: need(self.mean, "exponential", "mean")? },
            "lognormal" => Dist::LogNormal {
                mean: need(self.mean, "lognormal", "mean")?,
                cv: need(self.cv, "lognormal", "cv")?,
            },
            "gamma" => {
                Dist::Gamma { mean: need(self.mean, "gamma", "mean")?, cv: need(self.cv, "gamma", "cv")? }
            }
            "uniform" => Dist::Uniform {
                min: need(self.min, "uniform", "min")?,
                max: need(self.max, "uniform", "max")?,
            },
            "empirical" => {
                Dist::Empirical { file: self.file, samples: self.samples.unwrap_or_default().into() }
            }
            "sum" => Dist::Sum(self.of.ok_or(DistError::Missing { kind: "sum", param: "of" })?),
            other => return Err(DistError::UnknownKind(other.to_owned())),
        };
        dist.validate()?;
        Ok(dist)
    }
}

impl<'de> Deserialize<'de> for Dist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dist;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a table like { dist = \"exponential\", mean = 2.0 }")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dist, E> {
                let d = Dist::Const(v);
                d.validate().map_err(E::custom)?;
                Ok(d)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dist, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dist, E> {
                self.visit_f64(v as f64)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Dist, A::Error> {
                let table = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                table.into_dist().map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// Sample means of 200k draws stay within 2% of the mean for these cvs.
    const MEAN_TOL: f64 = 0.02;

    fn parse(text: &str) -> Result<Dist, String> {
        #[derive(Deserialize)]
        struct W {
            x: Dist,
        }
        toml::from_str::<W>(text).map(|w| w.x).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(parse("x = 3").unwrap(), Dist::Const(3.0));
        assert_eq!(parse("x = 2.5").unwrap(), Dist::Const(2.5));
        assert_eq!(
            parse("x = { dist = \"exponential\", mean = 2.0 }").unwrap(),
            Dist::Exponential { mean: 2.0 }
        );
        assert_eq!(
            parse("x = { dist = \"gamma\", mean = 2.0, cv = 0.5 }").unwrap(),
            Dist::Gamma { mean: 2.0, cv: 0.5 }
        );
        let e = parse("x = { dist = \"empirical\", samples = [1.0, 3.0] }").unwrap();
        assert_eq!(e.mean(), 2.0);
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        for (text, want) in [
            ("x = -1", "≥ 0"),
            ("x = { dist = \"exponential\", mean = 0 }", "mean > 0"),
            ("x = { dist = \"weibull\", mean = 1 }", "expected one of"),
            ("x = { dist = \"gamma\", mean = 1 }", "needs `cv`"),
            ("x = { dist = \"uniform\", min = 3, max = 1 }", "max ≥ min"),
            ("x = { dist = \"exponential\", mean = 1, sigma = 2 }", "unknown field `sigma`"),
            ("x = \"fast\"", "a number or a table"),
            ("x = 1e300", "value ≤ 1e9, got 1e300"),
            ("x = nan", "value ≥ 0, got NaN"),
            ("x = { dist = \"exponential\", mean = 2e9 }", "mean ≤ 1e9, got 2e9"),
            ("x = { dist = \"gamma\", mean = 1, cv = 1e200 }", "cv in [1e-6, 1e3], got 1e200"),
            ("x = { dist = \"gamma\", mean = 1, cv = 1e-200 }", "cv in [1e-6, 1e3], got 1e-200"),
            ("x = { dist = \"lognormal\", mean = 1, cv = 1e200 }", "cv in [1e-6, 1e3], got 1e200"),
            ("x = { dist = \"lognormal\", mean = inf, cv = 1 }", "mean ≤ 1e9, got inf"),
            ("x = { dist = \"uniform\", min = 0, max = 1e10 }", "max ≤ 1e9, got 1e10"),
            ("x = { dist = \"empirical\", samples = [1, -1] }", "samples finite, ≥ 0 and ≤ 1e9, got -1"),
            ("x = { dist = \"empirical\", samples = [1, 1e12] }", "got 1e12"),
            ("x = { dist = \"sum\", of = [9e8, 9e8] }", "sum needs mean ≤ 1e9, got 1.8e9"),
            ("x = { dist = \"gamma\", mean = 1e-320, cv = 1e-6 }", "cannot be sampled"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    /// At the edges of every limit a sampler builds and draws finite values ≥ 0, so a
    /// valid distribution can never make `sampler` fail.
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

    #[test]
    fn samples_file_is_read_relative_to_base() {
        let dir = std::env::temp_dir().join(format!("servesim-dist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s.csv"), "ms\n1.0\n# note\n3.0\n").unwrap();
        let mut d = Dist::Empirical { file: Some("s.csv".into()), samples: Arc::from([]) };
        d.load_files(&dir).unwrap();
        assert_eq!(d.mean(), 2.0);
        std::fs::write(dir.join("bad.csv"), "1.0\nx\n").unwrap();
        let mut d = Dist::Empirical { file: Some("bad.csv".into()), samples: Arc::from([]) };
        assert!(d.load_files(&dir).unwrap_err().to_string().contains("line 2"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
