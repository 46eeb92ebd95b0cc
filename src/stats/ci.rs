//! Confidence intervals across independent replications, and error metrics.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// A mean over independent replications with the half-width of its 95% confidence
/// interval (Student t with n − 1 degrees of freedom).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Sample mean.
    pub mean: f64,
    /// Half-width of the 95% confidence interval; 0 when fewer than 2 samples.
    pub half_width: f64,
    /// Number of samples.
    pub n: usize,
}

impl Estimate {
    /// Whether `value` lies inside the interval `mean ± half_width`.
    pub fn contains(&self, value: f64) -> bool {
        (value - self.mean).abs() <= self.half_width
    }
}

/// The 0.975 quantile of Student's t with `dof` degrees of freedom (`dof ≥ 1`).
pub fn student_t_975(dof: usize) -> f64 {
    let dof = dof.max(1) as f64;
    StudentsT::new(0.0, 1.0, dof).map(|t| t.inverse_cdf(0.975)).unwrap_or(f64::NAN)
}

/// Mean and 95% CI half-width of `samples` (replication means, batch means…).
///
/// `x̄ ± t(0.975, n−1) · s / √n`, with `s` the sample standard deviation.
pub fn mean_ci95(samples: &[f64]) -> Estimate {
    let n = samples.len();
    if n == 0 {
        return Estimate::default();
    }
    let mean = samples.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Estimate { mean, half_width: 0.0, n };
    }
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half_width = student_t_975(n - 1) * (var / n as f64).sqrt();
    Estimate { mean, half_width, n }
}

/// Signed relative error of a prediction against a measurement: `(pred − meas) / meas`.
/// `NaN` when the measurement is 0.
pub fn relative_error(predicted: f64, measured: f64) -> f64 {
    if measured == 0.0 { f64::NAN } else { (predicted - measured) / measured }
}

/// Field-by-field mean and 95% CI half-width of a list of records with numeric fields
/// (nested structs allowed): returns `(means, half_widths)` of the same type.
///
/// Every record must have the same shape; non-numeric fields are copied from the first.
pub fn mean_ci95_fields<T: Serialize + DeserializeOwned + Default>(records: &[T]) -> (T, T) {
    let values: Vec<Value> = records.iter().filter_map(|r| serde_json::to_value(r).ok()).collect();
    if values.is_empty() {
        return (T::default(), T::default());
    }
    let refs: Vec<&Value> = values.iter().collect();
    let (mean, half) = fold_fields(&refs);
    let back = |v: Value| serde_json::from_value(v).unwrap_or_default();
    (back(mean), back(half))
}

fn fold_fields(values: &[&Value]) -> (Value, Value) {
    match values[0] {
        Value::Object(first) => {
            let (mut mean, mut half) = (Map::new(), Map::new());
            for key in first.keys() {
                let column: Vec<&Value> = values.iter().filter_map(|v| v.get(key)).collect();
                let (m, h) = fold_fields(&column);
                mean.insert(key.clone(), m);
                half.insert(key.clone(), h);
            }
            (Value::Object(mean), Value::Object(half))
        }
        Value::Number(_) => {
            let xs: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
            let e = mean_ci95(&xs);
            (json_f64(e.mean), json_f64(e.half_width))
        }
        other => (other.clone(), other.clone()),
    }
}

fn json_f64(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-3;

    #[test]
    fn t_quantiles_match_tables() {
        // Published two-sided 95% critical values.
        for (dof, want) in [(1, 12.706), (4, 2.776), (9, 2.262), (29, 2.045), (1000, 1.962)] {
            assert!((student_t_975(dof) - want).abs() < TOL, "dof {dof}");
        }
    }

    #[test]
    fn ci_of_known_sample() {
        // mean 3, s = sqrt(2.5), n = 5 → 2.776 · 0.7071 = 1.9632
        let e = mean_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((e.mean - 3.0).abs() < 1e-12);
        assert!((e.half_width - 1.9632).abs() < TOL);
        assert!(e.contains(4.9) && !e.contains(5.0));
    }

    #[test]
    fn fields_are_aggregated_one_by_one() {
        #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
        struct Inner {
            a: f64,
        }
        #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
        struct Rec {
            x: f64,
            inner: Inner,
        }
        let recs: Vec<Rec> =
            [1.0, 2.0, 3.0, 4.0, 5.0].iter().map(|&v| Rec { x: v, inner: Inner { a: 10.0 * v } }).collect();
        let (mean, half) = mean_ci95_fields(&recs);
        assert_eq!(mean, Rec { x: 3.0, inner: Inner { a: 30.0 } });
        assert!((half.x - 1.9632).abs() < TOL);
        assert!((half.inner.a - 19.632).abs() < 10.0 * TOL);
    }

    #[test]
    fn degenerate_samples() {
        assert_eq!(mean_ci95(&[]).n, 0);
        assert_eq!(mean_ci95(&[7.0]).half_width, 0.0);
        assert!(relative_error(1.0, 0.0).is_nan());
        assert!((relative_error(1.1, 1.0) - 0.1).abs() < 1e-12);
    }
}
