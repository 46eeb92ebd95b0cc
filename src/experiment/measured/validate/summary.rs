//! The validation's summary: median and largest |error| per metric over every point, and
//! the targets they are held to.

use super::{Compared, PointLimits, ValidatedPoint};
use serde::{Deserialize, Serialize};

/// Median and largest |error| of one metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorSummary {
    /// Points counted.
    pub points: usize,
    /// Median |error| (%).
    pub median_abs_pct: f64,
    /// Largest |error| (%).
    pub max_abs_pct: f64,
    /// Points whose predicted and measured 95% CIs overlap.
    #[serde(default)]
    pub agree: usize,
}

impl ErrorSummary {
    pub(super) fn of<'a>(compared: impl Iterator<Item = &'a Compared>) -> Self {
        let compared: Vec<&Compared> = compared.filter(|c| c.error_pct.is_finite()).collect();
        let agree = compared.iter().filter(|c| c.agrees).count();
        let mut e: Vec<f64> = compared.iter().map(|c| c.error_pct.abs()).collect();
        e.sort_by(f64::total_cmp);
        let median = match e.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => e[n / 2],
            n => (e[n / 2 - 1] + e[n / 2]) / 2.0,
        };
        Self {
            points: e.len(),
            median_abs_pct: median,
            max_abs_pct: e.last().copied().unwrap_or(f64::NAN),
            agree,
        }
    }
}

/// A target and whether it was met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The limit (%).
    pub limit_pct: f64,
    /// The value reached (%).
    pub value_pct: f64,
    /// `value ≤ limit`.
    pub met: bool,
}

impl Target {
    /// `name` reaching `value` against `limit` (both %): met when `value ≤ limit`.
    pub(super) fn check(name: &str, limit_pct: f64, value_pct: f64) -> Self {
        Self { name: name.into(), limit_pct, value_pct, met: value_pct <= limit_pct }
    }
}

/// The summary of metric `name` (empty if it has none).
pub(super) fn metric(summary: &[(String, ErrorSummary)], name: &str) -> ErrorSummary {
    summary.iter().find(|(k, _)| k == name).map(|(_, s)| *s).unwrap_or_default()
}

/// Each metric's |error| over `points`: throughput, p50, p95, p99, and throughput and p95
/// below saturation, in that order.
pub(super) fn summarize(points: &[ValidatedPoint]) -> Vec<(String, ErrorSummary)> {
    let mut out = Vec::new();
    for (i, name) in ["throughput", "p50", "p95", "p99"].iter().enumerate() {
        out.push((name.to_string(), ErrorSummary::of(points.iter().map(|p| p.metrics()[i].1))));
    }
    out.push((
        "throughput below saturation".into(),
        ErrorSummary::of(points.iter().filter(|p| !p.saturated).map(|p| &p.throughput_rps)),
    ));
    out.push((
        "p95 below saturation".into(),
        ErrorSummary::of(points.iter().filter(|p| !p.saturated).map(|p| &p.p95_ms)),
    ));
    out
}

/// The default suite's limits on the median |error| of throughput and p95 (%), which a
/// point is held to as well (see [`super::stages::name_misses`]).
pub(super) const SUITE_LIMITS: PointLimits = PointLimits { throughput_pct: 3.0, p95_pct: 5.0 };

/// The targets, checked against `summary`: the medians say how well the model follows the
/// machine in general, the maxima that no point — two workers included — is far off. A
/// target over no points (a sweep with nothing below saturation) is left out.
pub(super) fn targets(summary: &[(String, ErrorSummary)]) -> Vec<Target> {
    let get = |n: &str| metric(summary, n);
    let t = Target::check;
    [
        ("median |error| throughput", SUITE_LIMITS.throughput_pct, get("throughput"), false),
        ("median |error| p95", SUITE_LIMITS.p95_pct, get("p95"), false),
        ("median |error| p99", 8.0, get("p99"), false),
        ("max |error| throughput", 10.0, get("throughput"), true),
        ("max |error| p95 below saturation", 25.0, get("p95 below saturation"), true),
    ]
    .into_iter()
    .filter(|(_, _, e, _)| e.points > 0)
    .map(|(name, limit, e, max)| t(name, limit, if max { e.max_abs_pct } else { e.median_abs_pct }))
    .collect()
}

/// The summary in JSON: an object keyed by metric name, in the summary's order, so that
/// `jq '.summary.p95'` or `pandas.DataFrame(summary)` reads it directly. Reads the older
/// list of `[name, {…}]` pairs too.
pub(super) mod by_metric {
    use super::ErrorSummary;
    use serde::de::{MapAccess, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    type Summary = Vec<(String, ErrorSummary)>;

    pub fn serialize<S: Serializer>(summary: &Summary, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(summary.iter().map(|(name, e)| (name, e)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Summary, D::Error> {
        d.deserialize_any(SummaryVisitor)
    }

    struct SummaryVisitor;

    impl<'de> Visitor<'de> for SummaryVisitor {
        type Value = Summary;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of error summaries keyed by metric name")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Summary, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Summary, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = seq.next_element()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::measured::validate::Spread;

    #[test]
    fn errors_are_relative_to_the_measurement_and_summaries_use_absolute_values() {
        let spread = |value, lo, hi| Spread { value, lo, hi };
        let c = Compared::new(110.0, 1.0, spread(100.0, 95.0, 105.0));
        assert_eq!((c.measured, c.measured_lo, c.measured_hi), (100.0, 95.0, 105.0));
        assert!((c.error_pct - 10.0).abs() < 1e-12);
        assert!(!c.agrees, "109..111 and 95..105 do not overlap");
        let errs = [(96.0, true), (101.0, true), (102.0, false), (f64::NAN, false)];
        let cs: Vec<Compared> = errs
            .iter()
            .map(|&(pred, _)| {
                Compared::new(pred, if pred == 102.0 { 0.0 } else { 1.0 }, spread(100.0, 99.0, 101.5))
            })
            .collect();
        let s = ErrorSummary::of(cs.iter());
        assert_eq!((s.points, s.median_abs_pct, s.max_abs_pct), (3, 2.0, 4.0));
        assert_eq!(s.agree, 1, "only 101 ± 1 overlaps 99..101.5");
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "by_metric")]
        summary: Vec<(String, ErrorSummary)>,
    }

    fn summary() -> Vec<(String, ErrorSummary)> {
        let e = |points, median_abs_pct, max_abs_pct, agree| ErrorSummary {
            points,
            median_abs_pct,
            max_abs_pct,
            agree,
        };
        vec![
            ("throughput".into(), e(4, 1.5, 3.25, 2)),
            ("p50".into(), e(4, 2.0, 9.0, 1)),
            ("throughput below saturation".into(), e(2, 0.5, 1.0, 2)),
        ]
    }

    #[test]
    fn the_summary_is_an_object_keyed_by_metric_in_order() {
        let h = Holder { summary: summary() };
        let json = serde_json::to_value(&h).unwrap();
        let obj = json["summary"].as_object().expect("summary is a JSON object");
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(keys, ["throughput", "p50", "throughput below saturation"]);
        assert_eq!(json["summary"]["p50"]["max_abs_pct"], 9.0);
        assert_eq!(json["summary"]["throughput"]["agree"], 2);
        let back: Holder = serde_json::from_value(json).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn the_older_list_of_pairs_still_reads() {
        let list = serde_json::json!({ "summary": [["throughput", {"points": 4, "median_abs_pct": 1.5,
            "max_abs_pct": 3.25, "agree": 2}]] });
        let h: Holder = serde_json::from_value(list).unwrap();
        assert_eq!(h.summary, summary()[..1]);
    }

    #[test]
    fn the_committed_validation_json_keys_its_summary_by_metric_and_round_trips() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("validation/validation.json");
        let text = std::fs::read_to_string(&path).expect("validation/validation.json");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> =
            json["summary"].as_object().expect("an object").keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["throughput", "p50", "p95", "p99", "throughput below saturation", "p95 below saturation"]
        );
        let v: super::super::Validation = serde_json::from_str(&text).unwrap();
        assert_eq!(
            serde_json::to_string_pretty(&v).unwrap(),
            text,
            "written exactly as `validate` writes it"
        );
    }
}
