//! The Universal Scalability Law (N. Gunther, *Guerrilla Capacity Planning*, 2007):
//! `X(N) = λN / (1 + σ(N − 1) + κN(N − 1))`, where σ is contention (serialization) and κ
//! coherency (crosstalk), and its least-squares fit.
//!
//! The fit starts from the linearization `λN/X − 1 = σ(N − 1) + κN(N − 1)` with λ from the
//! smallest N, then refines (λ, σ, κ) by Levenberg–Marquardt on the throughput residuals.
//! Standard errors come from `s²(JᵀJ)⁻¹` at the optimum, with `s² = SSE / (n − 3)`; 95%
//! intervals use Student's t with `n − 3` degrees of freedom.

use super::error::AnalyticError;
use crate::stats::student_t_975;

/// USL parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UslParams {
    /// Throughput of one user [1/s].
    pub lambda: f64,
    /// Contention.
    pub sigma: f64,
    /// Coherency.
    pub kappa: f64,
}

impl UslParams {
    /// Throughput at concurrency `n`.
    pub fn throughput(&self, n: f64) -> f64 {
        self.lambda * n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }

    /// Concurrency of peak throughput, `√((1 − σ)/κ)` (infinite when κ ≤ 0).
    pub fn peak_concurrency(&self) -> f64 {
        if self.kappa > 0.0 { ((1.0 - self.sigma).max(0.0) / self.kappa).sqrt() } else { f64::INFINITY }
    }
}

/// A fit with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UslFit {
    /// The estimates.
    pub params: UslParams,
    /// Standard errors of (λ, σ, κ).
    pub std_err: UslParams,
    /// Half-widths of the 95% confidence intervals of (λ, σ, κ).
    pub ci95: UslParams,
    /// Coefficient of determination.
    pub r_squared: f64,
    /// Points fitted.
    pub points: usize,
}

type V3 = [f64; 3];

fn residuals_and_jacobian(p: &V3, data: &[(f64, f64)]) -> (Vec<f64>, Vec<V3>) {
    let (lam, sig, kap) = (p[0], p[1], p[2]);
    let mut r = Vec::with_capacity(data.len());
    let mut j = Vec::with_capacity(data.len());
    for &(n, x) in data {
        let den = 1.0 + sig * (n - 1.0) + kap * n * (n - 1.0);
        let model = lam * n / den;
        r.push(x - model);
        // Derivatives of the model.
        j.push([n / den, -model * (n - 1.0) / den, -model * n * (n - 1.0) / den]);
    }
    (r, j)
}

fn normal_equations(j: &[V3], r: &[f64]) -> ([V3; 3], V3) {
    let mut a = [[0.0; 3]; 3];
    let mut g = [0.0; 3];
    for (row, &ri) in j.iter().zip(r) {
        for p in 0..3 {
            g[p] += row[p] * ri;
            for q in 0..3 {
                a[p][q] += row[p] * row[q];
            }
        }
    }
    (a, g)
}

/// Solves a 3×3 system by Gaussian elimination with partial pivoting.
fn solve3(mut a: [V3; 3], mut b: V3) -> Option<V3> {
    for col in 0..3 {
        let piv = (col..3).max_by(|&i, &k| a[i][col].abs().total_cmp(&a[k][col].abs()))?;
        if a[piv][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        let pivot_row = a[col];
        for row in col + 1..3 {
            let f = a[row][col] / pivot_row[col];
            for (x, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let s: f64 = (row + 1..3).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

fn inverse3(a: [V3; 3]) -> Option<[V3; 3]> {
    let cols: Vec<V3> = (0..3)
        .map(|i| solve3(a, std::array::from_fn(|k| f64::from(u8::from(k == i)))))
        .collect::<Option<_>>()?;
    Some(std::array::from_fn(|r| std::array::from_fn(|c| cols[c][r])))
}

fn sse(p: &V3, data: &[(f64, f64)]) -> f64 {
    residuals_and_jacobian(p, data).0.iter().map(|r| r * r).sum()
}

/// The linearized first guess.
fn initial(data: &[(f64, f64)]) -> V3 {
    let &(n0, x0) = data.iter().min_by(|a, b| a.0.total_cmp(&b.0)).expect("non-empty");
    let lam = x0 / n0;
    // Least squares without intercept of y = σ·a + κ·b.
    let (mut saa, mut sab, mut sbb, mut say, mut sby) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(n, x) in data {
        let (a, b, y) = (n - 1.0, n * (n - 1.0), lam * n / x - 1.0);
        saa += a * a;
        sab += a * b;
        sbb += b * b;
        say += a * y;
        sby += b * y;
    }
    let det = saa * sbb - sab * sab;
    let (sig, kap) = if det.abs() > 1e-12 {
        ((say * sbb - sby * sab) / det, (saa * sby - sab * say) / det)
    } else {
        (0.0, 0.0)
    };
    [lam, sig, kap]
}

/// Fits the USL to `(concurrency, throughput)` points.
pub fn fit_usl(data: &[(f64, f64)]) -> Result<UslFit, AnalyticError> {
    if data.len() < 4 {
        return Err(AnalyticError::Data(format!(
            "the USL has 3 parameters: give at least 4 (concurrency, throughput) points, got {}",
            data.len()
        )));
    }
    if let Some(&(n, x)) =
        data.iter().find(|(n, x)| !(n.is_finite() && x.is_finite() && *n >= 1.0 && *x > 0.0))
    {
        return Err(AnalyticError::Data(format!(
            "every point needs concurrency ≥ 1 and throughput > 0, got ({n}, {x})"
        )));
    }
    let mut p = initial(data);
    let mut mu = 1e-3;
    let mut cost = sse(&p, data);
    for _ in 0..500 {
        let (r, j) = residuals_and_jacobian(&p, data);
        let (mut a, g) = normal_equations(&j, &r);
        for (k, row) in a.iter_mut().enumerate() {
            row[k] *= 1.0 + mu;
        }
        let Some(step) = solve3(a, g) else { break };
        let trial = [p[0] + step[0], p[1] + step[1], p[2] + step[2]];
        let c = sse(&trial, data);
        if c < cost {
            let done = (cost - c) <= 1e-15 * cost.max(1e-300);
            p = trial;
            cost = c;
            mu = (mu / 10.0).max(1e-12);
            if done {
                break;
            }
        } else {
            mu *= 10.0;
            if mu > 1e12 {
                break;
            }
        }
    }
    let (r, j) = residuals_and_jacobian(&p, data);
    let (a, _) = normal_equations(&j, &r);
    let dof = data.len() - 3;
    let s2 = cost / dof as f64;
    let cov = inverse3(a)
        .ok_or_else(|| AnalyticError::Data("the points do not determine σ and κ (singular fit)".into()))?;
    let se: V3 = std::array::from_fn(|k| (s2 * cov[k][k]).max(0.0).sqrt());
    let t = student_t_975(dof);
    let mean_x = data.iter().map(|d| d.1).sum::<f64>() / data.len() as f64;
    let sst: f64 = data.iter().map(|d| (d.1 - mean_x).powi(2)).sum();
    let params = |v: V3| UslParams { lambda: v[0], sigma: v[1], kappa: v[2] };
    Ok(UslFit {
        params: params(p),
        std_err: params(se),
        ci95: params([t * se[0], t * se[1], t * se[2]]),
        r_squared: if sst > 0.0 { 1.0 - cost / sst } else { 1.0 },
        points: data.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_known_parameters() {
        let truth = UslParams { lambda: 10.0, sigma: 0.05, kappa: 0.002 };
        let data: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
            .iter()
            .enumerate()
            // ±0.5% deterministic noise.
            .map(|(i, &n)| (n, truth.throughput(n) * (1.0 + if i % 2 == 0 { 0.005 } else { -0.005 })))
            .collect();
        let fit = fit_usl(&data).unwrap();
        let p = fit.params;
        assert!((p.lambda - 10.0).abs() <= fit.ci95.lambda.max(0.2), "{fit:?}");
        assert!((p.sigma - 0.05).abs() <= fit.ci95.sigma.max(0.01), "{fit:?}");
        assert!((p.kappa - 0.002).abs() <= fit.ci95.kappa.max(5e-4), "{fit:?}");
        assert!(fit.r_squared > 0.99);
        assert!((truth.peak_concurrency() - (0.95f64 / 0.002).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn exact_data_is_fitted_exactly() {
        let truth = UslParams { lambda: 3.0, sigma: 0.1, kappa: 0.01 };
        let data: Vec<(f64, f64)> = (1..=10).map(|n| (n as f64, truth.throughput(n as f64))).collect();
        let p = fit_usl(&data).unwrap().params;
        assert!(
            (p.lambda - 3.0).abs() < 1e-6 && (p.sigma - 0.1).abs() < 1e-6 && (p.kappa - 0.01).abs() < 1e-6,
            "{p:?}"
        );
    }

    #[test]
    fn degenerate_data_is_refused() {
        assert!(fit_usl(&[(1.0, 1.0), (2.0, 2.0)]).unwrap_err().to_string().contains("at least 4"));
        let e = fit_usl(&[(1.0, 1.0), (2.0, 2.0), (3.0, 0.0), (4.0, 3.0)]).unwrap_err().to_string();
        assert!(e.contains("throughput > 0"), "{e}");
    }
}
