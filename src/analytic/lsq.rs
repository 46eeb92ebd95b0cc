//! Nonlinear least squares in three parameters by Levenberg–Marquardt (J. Nocedal,
//! S. Wright, *Numerical Optimization*, 2006, §10.3), with the normal matrix scaled to a
//! unit diagonal before it is factored: the USL's λ, σ and κ differ by orders of magnitude.

/// A 3×3 matrix, row-major.
pub(crate) type Matrix3 = [[f64; 3]; 3];

/// Residuals `y_i − f(x_i; p)` and the gradients `∂f(x_i; p)/∂p` of a model in 3 parameters.
pub(crate) trait Problem {
    /// Number of observations.
    fn len(&self) -> usize;
    /// Residual of observation `i` and the model's gradient there.
    fn residual_and_gradient(&self, p: &[f64; 3], i: usize) -> (f64, [f64; 3]);
}

/// Iterations before giving up on further improvement.
const MAX_ITERATIONS: usize = 1000;
/// Relative decrease of the sum of squares below which the fit has converged.
const REL_DECREASE: f64 = 1e-15;

/// Sum of squared residuals at `p`.
pub(crate) fn sse(problem: &impl Problem, p: &[f64; 3]) -> f64 {
    (0..problem.len()).map(|i| problem.residual_and_gradient(p, i).0.powi(2)).sum()
}

/// `JᵀJ` and `Jᵀr` at `p`.
fn normal_equations(problem: &impl Problem, p: &[f64; 3]) -> (Matrix3, [f64; 3]) {
    let mut jtj = [[0.0; 3]; 3];
    let mut jtr = [0.0; 3];
    for i in 0..problem.len() {
        let (r, g) = problem.residual_and_gradient(p, i);
        for a in 0..3 {
            jtr[a] += g[a] * r;
            for b in 0..3 {
                jtj[a][b] += g[a] * g[b];
            }
        }
    }
    (jtj, jtr)
}

/// Minimizes the sum of squares from `start`; returns the best point found.
///
/// Each step solves `(JᵀJ + μ·diag(JᵀJ))·δ = Jᵀr`; μ shrinks tenfold after a step that
/// lowers the sum of squares and grows tenfold after one that does not (or that leaves
/// the model's domain, giving a non-finite sum).
pub(crate) fn levenberg_marquardt(problem: &impl Problem, start: [f64; 3]) -> [f64; 3] {
    let mut p = start;
    let mut cost = sse(problem, &p);
    let mut mu = 1e-3;
    for _ in 0..MAX_ITERATIONS {
        let (mut a, g) = normal_equations(problem, &p);
        for (k, row) in a.iter_mut().enumerate() {
            row[k] *= 1.0 + mu;
        }
        let Some(step) = solve(a, g) else { break };
        let trial = [p[0] + step[0], p[1] + step[1], p[2] + step[2]];
        let trial_cost = sse(problem, &trial);
        if trial_cost < cost {
            let converged = cost - trial_cost <= REL_DECREASE * cost;
            (p, cost) = (trial, trial_cost);
            mu = (mu / 10.0).max(1e-15);
            if converged {
                break;
            }
        } else {
            mu *= 10.0;
            if mu > 1e15 {
                break;
            }
        }
    }
    p
}

/// `(JᵀJ)⁻¹` at `p`, the unscaled covariance of the estimates; `None` when singular.
pub(crate) fn inverse_normal_matrix(problem: &impl Problem, p: &[f64; 3]) -> Option<Matrix3> {
    let (a, _) = normal_equations(problem, p);
    let columns: [[f64; 3]; 3] =
        [solve(a, [1.0, 0.0, 0.0])?, solve(a, [0.0, 1.0, 0.0])?, solve(a, [0.0, 0.0, 1.0])?];
    Some(std::array::from_fn(|r| std::array::from_fn(|c| columns[c][r])))
}

/// Solves the symmetric positive-definite system `a·x = b` by Cholesky after scaling `a`
/// to a unit diagonal; `None` when `a` is singular to working precision.
fn solve(a: Matrix3, b: [f64; 3]) -> Option<[f64; 3]> {
    let positive_diagonal = (0..3).all(|k| a[k][k].is_finite() && a[k][k] > 0.0);
    if !positive_diagonal {
        return None;
    }
    let d: [f64; 3] = std::array::from_fn(|k| 1.0 / a[k][k].sqrt());
    let scaled: Matrix3 = std::array::from_fn(|r| std::array::from_fn(|c| a[r][c] * d[r] * d[c]));
    let l = cholesky(&scaled)?;
    let y = forward(&l, std::array::from_fn(|k| b[k] * d[k]));
    let z = backward(&l, y);
    Some(std::array::from_fn(|k| z[k] * d[k]))
}

/// Lower-triangular `l` with `l·lᵀ = a`; `None` unless `a` is positive definite with a
/// condition number below ~1e14.
fn cholesky(a: &Matrix3) -> Option<Matrix3> {
    let mut l = [[0.0; 3]; 3];
    for r in 0..3 {
        for c in 0..=r {
            let s: f64 = (0..c).map(|k| l[r][k] * l[c][k]).sum();
            if r == c {
                let pivot = a[r][r] - s;
                if pivot.is_nan() || pivot <= 1e-14 {
                    return None;
                }
                l[r][r] = pivot.sqrt();
            } else {
                l[r][c] = (a[r][c] - s) / l[c][c];
            }
        }
    }
    Some(l)
}

/// Solves `l·y = b` for lower-triangular `l`.
fn forward(l: &Matrix3, b: [f64; 3]) -> [f64; 3] {
    let mut y = [0.0; 3];
    for r in 0..3 {
        y[r] = (b[r] - (0..r).map(|k| l[r][k] * y[k]).sum::<f64>()) / l[r][r];
    }
    y
}

/// Solves `lᵀ·x = y` for lower-triangular `l`.
fn backward(l: &Matrix3, y: [f64; 3]) -> [f64; 3] {
    let mut x = [0.0; 3];
    for r in (0..3).rev() {
        x[r] = (y[r] - (r + 1..3).map(|k| l[k][r] * x[k]).sum::<f64>()) / l[r][r];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-12;

    /// A parabola `y = p0 + p1·x + p2·x²` through given points: linear least squares,
    /// so the normal equations have a closed-form answer to compare with.
    struct Quadratic(Vec<(f64, f64)>);

    impl Problem for Quadratic {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn residual_and_gradient(&self, p: &[f64; 3], i: usize) -> (f64, [f64; 3]) {
            let (x, y) = self.0[i];
            (y - (p[0] + p[1] * x + p[2] * x * x), [1.0, x, x * x])
        }
    }

    #[test]
    fn fits_a_parabola_through_three_points_exactly() {
        // y = 1 − 2x + 3x² at x = 0, 1, 2 → y = 1, 2, 9.
        let q = Quadratic(vec![(0.0, 1.0), (1.0, 2.0), (2.0, 9.0)]);
        let p = levenberg_marquardt(&q, [0.0, 0.0, 0.0]);
        assert!((p[0] - 1.0).abs() < 1e-9 && (p[1] + 2.0).abs() < 1e-9 && (p[2] - 3.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn inverse_of_a_hand_computed_normal_matrix() {
        // x = 0, 1, 2, 3: JᵀJ = [[4, 6, 14], [6, 14, 36], [14, 36, 98]], det = 80; its
        // inverse, by cofactors: [[19, −21, 5], [−21, 49, −15], [5, −15, 5]] / 20.
        let q = Quadratic(vec![(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (3.0, 0.0)]);
        let inv = inverse_normal_matrix(&q, &[0.0; 3]).unwrap();
        let want = [[19.0, -21.0, 5.0], [-21.0, 49.0, -15.0], [5.0, -15.0, 5.0]];
        for r in 0..3 {
            for c in 0..3 {
                assert!((inv[r][c] - want[r][c] / 20.0).abs() < TOL, "{inv:?}");
            }
        }
    }

    #[test]
    fn singular_systems_are_detected() {
        // Two distinct x cannot determine a parabola.
        let q = Quadratic(vec![(1.0, 0.0), (1.0, 1.0), (2.0, 0.0)]);
        assert!(inverse_normal_matrix(&q, &[0.0; 3]).is_none());
    }
}
