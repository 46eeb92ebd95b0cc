//! The question a capacity search answers: a target rate, a latency objective, and caps;
//! and the flag values (`--slo p95=300ms`, `--max-memory 16GiB`) it is written with.

use super::{CapacityError, flag_err};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Which latency figure the SLO bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SloMetric {
    /// Mean latency.
    Mean,
    /// Median.
    P50,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
}

/// A latency objective, e.g. `p95=300ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// The figure bounded.
    pub metric: SloMetric,
    /// Its limit (ms).
    pub limit_ms: f64,
}

/// A duration such as `300ms`, `1.5s` or `250` (milliseconds) → ms.
fn parse_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("us").or_else(|| s.strip_suffix("µs")) {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e3)
    } else {
        (s, 1.0)
    };
    num.trim().parse::<f64>().ok().map(|v| v * scale).filter(|v| v.is_finite() && *v > 0.0)
}

impl FromStr for Slo {
    type Err = CapacityError;

    fn from_str(s: &str) -> Result<Self, CapacityError> {
        let bad = |m: &str| flag_err("--slo", s, m);
        let (metric, limit) =
            s.split_once('=').ok_or_else(|| bad("expected METRIC=LIMIT, e.g. p95=300ms"))?;
        let metric = match metric.trim() {
            "mean" => SloMetric::Mean,
            "p50" => SloMetric::P50,
            "p95" => SloMetric::P95,
            "p99" => SloMetric::P99,
            _ => return Err(bad("METRIC must be mean, p50, p95 or p99")),
        };
        let limit_ms =
            parse_ms(limit).ok_or_else(|| bad("LIMIT must be a positive duration, e.g. 300ms or 1.5s"))?;
        Ok(Slo { metric, limit_ms })
    }
}

/// A memory size such as `16GiB`, `512MiB`, `2GB` → megabytes (10⁶ bytes).
pub fn parse_memory_mb(s: &str) -> Result<f64, CapacityError> {
    let t = s.trim();
    // The unit is the trailing letters, so that a number may have an exponent (`1.5e3MB`).
    let split = t.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len();
    let (num, unit) = t.split_at(split);
    let bytes: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024f64.powi(2),
        "GiB" => 1024f64.powi(3),
        "TiB" => 1024f64.powi(4),
        _ => {
            return Err(flag_err(
                "--max-memory",
                s,
                "the unit must be one of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB",
            ));
        }
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * bytes / 1e6),
        _ => Err(flag_err("--max-memory", s, "expected a positive size, e.g. 16GiB")),
    }
}

/// What to plan for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityQuery {
    /// Rate the configuration must hold (requests/s).
    pub target_rps: f64,
    /// The latency objective.
    pub slo: Slo,
    /// Memory cap over all workers (MB), if any.
    pub max_memory_mb: Option<f64>,
    /// Most cores to consider.
    pub max_cores: u32,
    /// Extra load the answer must absorb: it is checked at `target_rps · (1 + headroom)`.
    pub headroom: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_refuse_clearly() {
        assert_eq!("p95=300ms".parse::<Slo>().unwrap(), Slo { metric: SloMetric::P95, limit_ms: 300.0 });
        assert_eq!("mean=1.5s".parse::<Slo>().unwrap().limit_ms, 1500.0);
        assert!("p90=1s".parse::<Slo>().unwrap_err().to_string().contains("mean, p50, p95 or p99"));
        assert!("p95=-1ms".parse::<Slo>().unwrap_err().to_string().contains("positive duration"));
        assert!((parse_memory_mb("16GiB").unwrap() - 17179.869184).abs() < 1e-6);
        assert_eq!(parse_memory_mb("64 GB").unwrap(), 64_000.0);
        assert!(parse_memory_mb("3 parsecs").unwrap_err().to_string().contains("the unit must be"));
        assert_eq!(parse_memory_mb("1.5e3MB").unwrap(), 1500.0);
        assert_eq!(parse_memory_mb("2e6").unwrap(), 2.0);
        assert!(parse_memory_mb("1e").unwrap_err().to_string().contains("the unit must be"));
        assert!(parse_memory_mb("GiB").unwrap_err().to_string().contains("a positive size"));
    }
}
