//! The Universal Scalability Law and its least-squares fit.
//!
//! Source: N. Gunther, *Guerrilla Capacity Planning* (2007), ch. 4–6:
//!
//! ```text
//! X(N) = λ·N / (1 + σ·(N − 1) + κ·N·(N − 1)),     N* = √((1 − σ)/κ)
//! ```
//!
//! λ is the throughput of one user, σ the contention (the serialized fraction, as in
//! Amdahl's law) and κ the coherency delay (pairwise crosstalk, which makes throughput
//! fall past the peak N*).
//!
//! The fit starts from Gunther's linearization `λN/X − 1 = σ·(N − 1) + κ·N·(N − 1)` with λ
//! taken from the smallest N, then minimizes the squared throughput residuals over
//! (λ, σ, κ) by Levenberg–Marquardt (J. Nocedal, S. Wright, *Numerical Optimization*,
//! 2006, §10.3). Standard errors are `√diag(s²·(JᵀJ)⁻¹)` with J the model's Jacobian at the
//! optimum and `s² = SSE/(n − 3)`; 95% intervals are `± t(0.975; n − 3)·SE` (D. Bates,
//! D. Watts, *Nonlinear Regression Analysis and its Applications*, 1988, §2.3).

use super::error::{AnalyticError, finite, positive};
use super::lsq::{self, Problem};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The three USL parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UslParams {
    /// Throughput of one user λ, in the unit of the data's throughput (e.g. 1/s).
    pub lambda: f64,
    /// Contention σ (0 for none).
    pub sigma: f64,
    /// Coherency κ (0 for none).
    pub kappa: f64,
}

impl UslParams {
    /// Parameters checked for use as a model: λ finite and > 0, σ and κ finite.
    pub fn new(lambda: f64, sigma: f64, kappa: f64) -> Result<Self, AnalyticError> {
        positive("USL throughput of one user λ", lambda)?;
        finite("USL contention σ", sigma)?;
        finite("USL coherency κ", kappa)?;
        Ok(Self { lambda, sigma, kappa })
    }

    /// Throughput X(N) at concurrency `n`, `λN / (1 + σ(N − 1) + κN(N − 1))`.
    pub fn throughput(&self, n: f64) -> f64 {
        self.lambda * n / self.denominator(n)
    }

    /// Concurrency of peak throughput, `N* = √((1 − σ)/κ)`: where `dX/dN = 0`. Infinite when
    /// κ ≤ 0 (throughput then rises for ever, towards λ/σ); 0 when σ ≥ 1 (throughput falls
    /// from the start).
    pub fn peak_concurrency(&self) -> f64 {
        if self.kappa > 0.0 { ((1.0 - self.sigma).max(0.0) / self.kappa).sqrt() } else { f64::INFINITY }
    }

    /// Throughput at [`peak_concurrency`](Self::peak_concurrency); when there is no peak,
    /// the limit `λ/σ` (infinite when σ ≤ 0 too).
    pub fn peak_throughput(&self) -> f64 {
        let n = self.peak_concurrency();
        if n.is_finite() {
            self.throughput(n)
        } else if self.sigma > 0.0 {
            self.lambda / self.sigma
        } else {
            f64::INFINITY
        }
    }

    fn denominator(&self, n: f64) -> f64 {
        1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0)
    }

    fn from_array(p: [f64; 3]) -> Self {
        Self { lambda: p[0], sigma: p[1], kappa: p[2] }
    }
}

/// A fitted USL with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UslFit {
    /// Least-squares estimates of (λ, σ, κ).
    pub params: UslParams,
    /// Standard errors of the estimates; NaN with exactly 3 points (no degree of freedom
    /// left to estimate the noise).
    pub std_err: UslParams,
    /// Half-widths of the 95% confidence intervals, `t(0.975; n − 3)·SE`; NaN with exactly
    /// 3 points.
    pub ci95: UslParams,
    /// Coefficient of determination `1 − SSE/SST` (1 when every X is equal and fitted).
    pub r_squared: f64,
    /// Points fitted.
    pub points: usize,
    /// Residual degrees of freedom, `n − 3`.
    pub dof: usize,
}

/// The USL as a least-squares problem on `(N, X)` points.
struct UslProblem<'a> {
    data: &'a [(f64, f64)],
}

impl Problem for UslProblem<'_> {
    fn len(&self) -> usize {
        self.data.len()
    }

    /// Residual `X − X̂(N)` and the model's gradient `∂X̂/∂(λ, σ, κ)`.
    fn residual_and_gradient(&self, p: &[f64; 3], i: usize) -> (f64, [f64; 3]) {
        let (n, x) = self.data[i];
        let params = UslParams::from_array(*p);
        let den = params.denominator(n);
        let model = params.throughput(n);
        (x - model, [n / den, -model * (n - 1.0) / den, -model * n * (n - 1.0) / den])
    }
}

/// Fits the USL to `(concurrency N, throughput X)` points.
///
/// Fails with fewer than 3 points, with a point whose N or X is not finite and positive,
/// or when fewer than 3 distinct concurrencies leave σ and κ undetermined.
pub fn fit_usl(data: &[(f64, f64)]) -> Result<UslFit, AnalyticError> {
    validate(data)?;
    let problem = UslProblem { data };
    let p = lsq::levenberg_marquardt(&problem, linearized_guess(data));
    let sse = lsq::sse(&problem, &p);
    let cov = lsq::inverse_normal_matrix(&problem, &p).ok_or(AnalyticError::Singular {
        what: "λ, σ and κ",
        fix: "measure throughput at more concurrencies, spread wider",
    })?;
    let dof = data.len() - 3;
    let s2 = if dof > 0 { sse / dof as f64 } else { f64::NAN };
    let se: [f64; 3] = std::array::from_fn(|k| (s2 * cov[k][k]).sqrt());
    let t = t_975(dof);
    Ok(UslFit {
        params: UslParams::from_array(p),
        std_err: UslParams::from_array(se),
        ci95: UslParams::from_array(se.map(|s| t * s)),
        r_squared: r_squared(data, sse),
        points: data.len(),
        dof,
    })
}

fn validate(data: &[(f64, f64)]) -> Result<(), AnalyticError> {
    if data.len() < 3 {
        return Err(AnalyticError::TooFewPoints { model: "USL", params: 3, got: data.len() });
    }
    let valid = |v: f64| v.is_finite() && v > 0.0;
    if let Some((index, &(n, x))) = data.iter().enumerate().find(|(_, (n, x))| !(valid(*n) && valid(*x))) {
        return Err(AnalyticError::BadPoint { index, concurrency: n, throughput: x });
    }
    let mut ns: Vec<f64> = data.iter().map(|d| d.0).collect();
    ns.sort_by(f64::total_cmp);
    ns.dedup();
    if ns.len() < 3 {
        return Err(AnalyticError::Singular {
            what: "σ and κ",
            fix: "measure at least 3 different concurrencies",
        });
    }
    Ok(())
}

/// Gunther's linearization: λ = X/N at the smallest N, then `λN/X − 1 = σ·a + κ·b` with
/// `a = N − 1`, `b = N(N − 1)`, by least squares without intercept.
fn linearized_guess(data: &[(f64, f64)]) -> [f64; 3] {
    let (n0, x0) = data.iter().copied().fold((f64::INFINITY, 0.0), |m, d| if d.0 < m.0 { d } else { m });
    let lambda = x0 / n0;
    let (mut saa, mut sab, mut sbb, mut say, mut sby) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(n, x) in data {
        let (a, b, y) = (n - 1.0, n * (n - 1.0), lambda * n / x - 1.0);
        saa += a * a;
        sab += a * b;
        sbb += b * b;
        say += a * y;
        sby += b * y;
    }
    let det = saa * sbb - sab * sab;
    if det.abs() > 1e-12 * saa * sbb {
        [lambda, (say * sbb - sby * sab) / det, (saa * sby - sab * say) / det]
    } else {
        [lambda, 0.0, 0.0]
    }
}

/// The 0.975 quantile of Student's t with `dof` ≥ 1 degrees of freedom; NaN for 0.
fn t_975(dof: usize) -> f64 {
    StudentsT::new(0.0, 1.0, dof as f64).map_or(f64::NAN, |t| t.inverse_cdf(0.975))
}

fn r_squared(data: &[(f64, f64)], sse: f64) -> f64 {
    let mean = data.iter().map(|d| d.1).sum::<f64>() / data.len() as f64;
    let sst: f64 = data.iter().map(|d| (d.1 - mean).powi(2)).sum();
    if sst > 0.0 { 1.0 - sse / sst } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recovery of parameters from noiseless data.
    const EXACT_TOL: f64 = 1e-9;
    /// Relative agreement with the independent 40-digit reference fit.
    const REF_TOL: f64 = 1e-6;

    fn rel(got: f64, want: f64) -> f64 {
        ((got - want) / want).abs()
    }

    #[test]
    fn three_points_are_interpolated_with_undefined_errors() {
        // λ = 2, σ = 0.1, κ = 0.01: X(1) = 2, X(2) = 4/1.12, X(4) = 8/1.42.
        let data = [(1.0, 2.0), (2.0, 4.0 / 1.12), (4.0, 8.0 / 1.42)];
        let fit = fit_usl(&data).unwrap();
        let p = fit.params;
        assert!((p.lambda - 2.0).abs() < EXACT_TOL && (p.sigma - 0.1).abs() < EXACT_TOL, "{fit:?}");
        assert!((p.kappa - 0.01).abs() < EXACT_TOL, "{fit:?}");
        assert_eq!(fit.dof, 0);
        assert!(fit.std_err.lambda.is_nan() && fit.ci95.kappa.is_nan());
    }

    #[test]
    fn noiseless_data_is_recovered_from_any_smallest_concurrency() {
        // The linearized guess takes λ from the smallest N, wrong when that N is not 1.
        for (truth, ns) in [
            (UslParams { lambda: 3.0, sigma: 0.1, kappa: 0.01 }, vec![1.0, 2.0, 3.0, 5.0, 8.0, 13.0]),
            (UslParams { lambda: 250.0, sigma: 0.02, kappa: 1e-4 }, vec![4.0, 16.0, 64.0, 256.0]),
            (UslParams { lambda: 1.0, sigma: 0.0, kappa: 0.0 }, vec![1.0, 2.0, 3.0, 4.0]),
        ] {
            let data: Vec<(f64, f64)> = ns.iter().map(|&n| (n, truth.throughput(n))).collect();
            let fit = fit_usl(&data).unwrap();
            let p = fit.params;
            assert!((p.lambda - truth.lambda).abs() < EXACT_TOL * truth.lambda, "{fit:?}");
            assert!(
                (p.sigma - truth.sigma).abs() < EXACT_TOL && (p.kappa - truth.kappa).abs() < EXACT_TOL,
                "{fit:?}"
            );
            assert!((fit.r_squared - 1.0).abs() < 1e-12, "{fit:?}");
        }
    }

    #[test]
    fn noisy_fit_matches_an_independent_reference() {
        // X = USL(10, 0.05, 0.002)·(1.004, 0.993, 1.006, 0.997, 1.002, 0.995, 1.005). The
        // reference solves ∇SSE = 0 with numerical derivatives in 40-digit arithmetic, takes
        // the Jacobian the same way, and t(0.975; 4) = 2.77644510519779 from the incomplete
        // beta function.
        let data = [
            (1.0, 10.04),
            (2.0, 18.842_504_743_833_017),
            (4.0, 34.275_979_557_069_847),
            (8.0, 54.555_403_556_771_546),
            (16.0, 71.892_376_681_614_35),
            (32.0, 70.224_966_916_629_91),
            (64.0, 52.660_880_956_279_68),
        ];
        let fit = fit_usl(&data).unwrap();
        let table = [
            (fit.params.lambda, 10.041_586_890_015_724),
            (fit.params.sigma, 0.051_019_478_191_926_08),
            (fit.params.kappa, 0.001_990_799_175_118_524_5),
            (fit.std_err.lambda, 0.078_672_928_698_056_3),
            (fit.std_err.sigma, 0.001_442_199_157_000_88),
            (fit.std_err.kappa, 2.020_002_775_301_21e-5),
            (fit.ci95.lambda, 0.218_431_067_795_293),
            (fit.ci95.sigma, 0.004_004_186_790_175_48),
            (fit.ci95.kappa, 5.608_426_817_970_99e-5),
            (fit.r_squared, 0.999_925_040_240_365_4),
        ];
        for (i, (got, want)) in table.into_iter().enumerate() {
            assert!(rel(got, want) < REF_TOL, "row {i}: {got} vs {want}; {fit:?}");
        }
        assert_eq!((fit.points, fit.dof), (7, 4));
    }

    #[test]
    fn peak_is_a_maximum() {
        // σ = 0.05, κ = 0.002: N* = √(0.95/0.002) = √475.
        let p = UslParams::new(10.0, 0.05, 0.002).unwrap();
        let n = p.peak_concurrency();
        assert!((n - 475f64.sqrt()).abs() < 1e-12);
        let x = p.peak_throughput();
        assert!(x > p.throughput(n - 0.01) && x > p.throughput(n + 0.01) && x > p.throughput(21.0));
        // Amdahl (κ = 0): no peak, throughput tends to λ/σ.
        let amdahl = UslParams::new(10.0, 0.05, 0.0).unwrap();
        assert_eq!(amdahl.peak_concurrency(), f64::INFINITY);
        assert!((amdahl.peak_throughput() - 200.0).abs() < 1e-12);
        assert!(amdahl.throughput(1e9) < 200.0 && amdahl.throughput(1e9) > 199.99);
    }

    #[test]
    fn degenerate_input_is_refused() {
        let cases: [(&[(f64, f64)], &str); 6] = [
            (&[(1.0, 1.0), (2.0, 2.0)], "the USL has 3 parameters: give at least 3 points, got 2"),
            (&[(1.0, 1.0), (0.0, 2.0), (3.0, 2.5)], "point 1 (N = 0, X = 2) is invalid"),
            (&[(1.0, 1.0), (2.0, -2.0), (3.0, 2.5)], "point 1 (N = 2, X = -2) is invalid"),
            (&[(1.0, f64::NAN), (2.0, 2.0), (3.0, 2.5)], "point 0 (N = 1, X = NaN)"),
            (&[(1.0, 1.0), (f64::INFINITY, 2.0), (3.0, 2.5)], "point 1 (N = inf"),
            (&[(1.0, 1.0), (2.0, 1.9), (2.0, 2.1), (1.0, 1.1)], "measure at least 3 different concurrencies"),
        ];
        for (data, want) in cases {
            let e = fit_usl(data).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        assert!(UslParams::new(0.0, 0.1, 0.1).unwrap_err().to_string().contains("λ must be finite and > 0"));
        assert!(UslParams::new(1.0, f64::NAN, 0.1).unwrap_err().to_string().contains("σ must be finite"));
    }
}
