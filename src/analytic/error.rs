//! Errors of the closed forms.

/// Why a closed form cannot be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalyticError {
    /// A parameter is out of range.
    #[error("{param} must be {rule}, got {got}")]
    Param {
        /// The parameter.
        param: &'static str,
        /// What it must satisfy.
        rule: &'static str,
        /// The value given.
        got: f64,
    },
    /// The queue is unstable: utilization ≥ 1.
    #[error(
        "utilization ρ = {rho:.3} ≥ 1: the queue is unstable; lower the arrival rate below {max_rate:.4}/s or add servers"
    )]
    Unstable {
        /// The utilization.
        rho: f64,
        /// The largest stable arrival rate.
        max_rate: f64,
    },
    /// Too few or degenerate data points for a fit.
    #[error("{0}")]
    Data(String),
}

/// Checks `x` is finite and satisfies `ok`.
pub(crate) fn check(param: &'static str, x: f64, ok: bool, rule: &'static str) -> Result<(), AnalyticError> {
    if x.is_finite() && ok { Ok(()) } else { Err(AnalyticError::Param { param, rule, got: x }) }
}
