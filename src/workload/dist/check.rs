//! The limits of a distribution's parameters, and the check that holds them.

use super::{Dist, DistError};

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
}

#[cfg(test)]
mod tests {
    use super::super::parse;

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
}
