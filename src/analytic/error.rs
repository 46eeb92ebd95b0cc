//! Errors of the closed forms: each names the parameter at fault and how to fix it.

/// Why a closed form cannot be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalyticError {
    /// A parameter is out of its domain (not finite, negative, zero servers…).
    #[error("{param} must be {rule}, got {got}")]
    Param {
        /// The parameter, with its unit.
        param: &'static str,
        /// What it must satisfy, e.g. "finite and > 0".
        rule: String,
        /// The value given.
        got: f64,
    },
    /// An open queue is offered at least as much work as it can serve.
    #[error(
        "utilization ρ = {rho:.2} ≥ 1: the {model} queue is unstable; lower the arrival rate below {}/s or {remedy}",
        significant(*max_arrival_rate_per_s)
    )]
    Unstable {
        /// The queue, e.g. "M/M/c".
        model: &'static str,
        /// Utilization per server.
        rho: f64,
        /// The largest stable arrival rate [1/s].
        max_arrival_rate_per_s: f64,
        /// The other way out, e.g. "add servers".
        remedy: &'static str,
    },
    /// A method does not apply to a station kind in the network.
    #[error("{method} apply to single-server queueing and delay stations only; {fix}")]
    Unsupported {
        /// The method, e.g. "balanced job bounds".
        method: &'static str,
        /// What to use instead.
        fix: &'static str,
    },
    /// Too few points for a fit.
    #[error("the {model} has {params} parameters: give at least {params} points, got {got}")]
    TooFewPoints {
        /// The model fitted.
        model: &'static str,
        /// Parameters to estimate.
        params: usize,
        /// Points given.
        got: usize,
    },
    /// A data point outside the model's domain.
    #[error(
        "point {index} (N = {concurrency}, X = {throughput}) is invalid: concurrency and throughput must be finite and > 0"
    )]
    BadPoint {
        /// 0-based position of the point.
        index: usize,
        /// Its concurrency N.
        concurrency: f64,
        /// Its throughput X.
        throughput: f64,
    },
    /// The data cannot determine every parameter.
    #[error("the points do not determine {what}: {fix}")]
    Singular {
        /// What is undetermined.
        what: &'static str,
        /// How to get a determined fit.
        fix: &'static str,
    },
}

/// Formats `x` with three significant digits ("3.33", "0.00417", "1.25e6").
fn significant(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor();
    if !(-4.0..6.0).contains(&magnitude) {
        return format!("{x:.2e}");
    }
    let decimals = (2.0 - magnitude).max(0.0) as usize;
    format!("{x:.decimals$}")
}

/// Checks that `x` is finite and satisfies `ok`, else names `param` and the `rule`.
pub(crate) fn check(param: &'static str, x: f64, ok: bool, rule: &str) -> Result<(), AnalyticError> {
    if x.is_finite() && ok {
        Ok(())
    } else {
        Err(AnalyticError::Param { param, rule: format!("finite and {rule}"), got: x })
    }
}

/// Checks that `x` is finite.
pub(crate) fn finite(param: &'static str, x: f64) -> Result<(), AnalyticError> {
    if x.is_finite() { Ok(()) } else { Err(AnalyticError::Param { param, rule: "finite".into(), got: x }) }
}

/// Checks that `x` is finite and > 0.
pub(crate) fn positive(param: &'static str, x: f64) -> Result<(), AnalyticError> {
    check(param, x, x > 0.0, "> 0")
}

/// Checks that `x` is finite and ≥ 0.
pub(crate) fn non_negative(param: &'static str, x: f64) -> Result<(), AnalyticError> {
    check(param, x, x >= 0.0, "≥ 0")
}

/// Checks a server count is at least 1.
pub(crate) fn servers(param: &'static str, c: u32) -> Result<(), AnalyticError> {
    if c >= 1 { Ok(()) } else { Err(AnalyticError::Param { param, rule: "≥ 1".into(), got: f64::from(c) }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_significant_digits() {
        for (x, want) in [(10.0 / 3.0, "3.33"), (0.004167, "0.00417"), (250.0, "250"), (1.25e7, "1.25e7")] {
            assert_eq!(significant(x), want);
        }
    }

    #[test]
    fn unstable_names_the_rate_and_the_remedy() {
        let e = AnalyticError::Unstable {
            model: "M/M/c",
            rho: 1.2,
            max_arrival_rate_per_s: 10.0 / 3.0,
            remedy: "add servers",
        };
        assert_eq!(
            e.to_string(),
            "utilization ρ = 1.20 ≥ 1: the M/M/c queue is unstable; \
             lower the arrival rate below 3.33/s or add servers"
        );
    }

    #[test]
    fn checks_refuse_non_finite_values() {
        let e = positive("mean service time E[S] [s]", f64::NAN).unwrap_err();
        assert_eq!(e.to_string(), "mean service time E[S] [s] must be finite and > 0, got NaN");
        assert!(non_negative("think time Z [s]", f64::INFINITY).is_err());
        assert!(non_negative("think time Z [s]", 0.0).is_ok());
        assert_eq!(servers("servers c", 0).unwrap_err().to_string(), "servers c must be ≥ 1, got 0");
    }
}
