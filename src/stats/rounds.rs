//! A constant measured in several independent rounds: the median as the estimate, and the
//! spread that says whether the rounds agree.
//!
//! A constant taken from a contended run (a wake-up's latency, a lock hand-off) moves with
//! whatever else the machine did in that run. One round is one draw of that noise; several
//! rounds show it. The median ignores one wild round of five; the interquartile spread,
//! relative to the median, says whether the rest agree.

use serde::{Deserialize, Serialize};

/// What several rounds of one measurement say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rounds {
    /// Each round's value, in the order measured; a round that gave no value (a fit that
    /// found none) is NaN, `null` in JSON, and left out of the median and the spread.
    #[serde(deserialize_with = "nan_for_null")]
    pub rounds: Vec<f64>,
    /// Their median: the estimate used.
    #[serde(deserialize_with = "nan_if_null")]
    pub median: f64,
    /// (75th − 25th percentile) / median: how far the middle rounds disagree.
    #[serde(deserialize_with = "nan_if_null")]
    pub spread: f64,
    /// Rounds more than [`OUTLIER_FACTOR`] × the bound away from the median (relative).
    #[serde(deserialize_with = "nan_for_null")]
    pub outliers: Vec<f64>,
    /// Whether `spread` is within the bound the rounds were judged against.
    pub stable: bool,
}

/// Reads a list of rounds in which `null` stands for a round with no value (JSON has no
/// NaN: serde_json writes a NaN as `null`), so a calibration reads back what it wrote.
fn nan_for_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let v: Vec<Option<f64>> = Deserialize::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

/// Reads a figure that may have been written as `null` (a NaN) as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A round is an outlier when it is this many bounds away from the median.
pub const OUTLIER_FACTOR: f64 = 2.0;

/// Percentile `p` (0…1) of sorted values, linearly interpolated.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let x = p * (sorted.len() - 1) as f64;
    let (i, f) = (x.floor() as usize, x - x.floor());
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + (sorted[j] - sorted[i]) * f
}

impl Rounds {
    /// Judges `rounds` (at least one; non-finite values are dropped) against `bound`, the
    /// largest relative interquartile spread that counts as agreement.
    pub fn judge(rounds: &[f64], bound: f64) -> Option<Rounds> {
        let mut sorted: Vec<f64> = rounds.iter().copied().filter(|x| x.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let median = percentile(&sorted, 0.5);
        let scale = median.abs().max(f64::MIN_POSITIVE);
        let spread = (percentile(&sorted, 0.75) - percentile(&sorted, 0.25)) / scale;
        let outliers = rounds
            .iter()
            .copied()
            .filter(|x| ((x - median) / scale).abs() > OUTLIER_FACTOR * bound)
            .collect();
        Some(Rounds { rounds: rounds.to_vec(), median, spread, outliers, stable: spread <= bound })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_wild_round_of_five_leaves_the_median_and_is_flagged() {
        let r = Rounds::judge(&[10.0, 10.2, 9.9, 10.1, 30.0], 0.25).unwrap();
        assert_eq!(r.median, 10.1);
        assert!(r.stable, "{r:?}");
        assert_eq!(r.outliers, [30.0]);
    }

    #[test]
    fn rounds_that_disagree_are_unstable() {
        let r = Rounds::judge(&[10.0, 20.0, 30.0, 40.0, 50.0], 0.25).unwrap();
        assert_eq!(r.median, 30.0);
        assert!(!r.stable, "{r:?}");
        assert!((r.spread - 20.0 / 30.0).abs() < 1e-12);
    }

    #[test]
    fn a_round_with_no_value_is_written_and_read_back() {
        let r = Rounds::judge(&[10.0, f64::NAN, 11.0], 0.25).unwrap();
        assert_eq!(r.median, 10.5);
        let json = serde_json::to_string(&r).expect("serializes");
        assert!(json.contains("[10.0,null,11.0]"), "{json}");
        let back: Rounds = serde_json::from_str(&json).expect("reads back what it wrote");
        assert_eq!(back.rounds.len(), 3);
        assert!(back.rounds[1].is_nan() && back.rounds[0] == 10.0 && back.median == 10.5);
        // Rounds whose median is 0 and that still differ have an infinite spread, which JSON
        // writes as `null` too (a mutex wake-up measured 0 in most rounds): it reads back.
        let r = Rounds::judge(&[0.0, 0.0, 0.0, 5.0, 7.0], 0.25).unwrap();
        assert!(r.spread.is_infinite() && !r.stable, "{r:?}");
        let back: Rounds = serde_json::from_str(&serde_json::to_string(&r).unwrap()).expect("reads back");
        assert!(back.spread.is_nan() && back.median == 0.0 && !back.stable);
        // Every figure of the rounds reads a `null` back as NaN, not as an error.
        let nulls = r#"{"rounds":[null],"median":null,"spread":null,"outliers":[null],"stable":false}"#;
        let back: Rounds = serde_json::from_str(nulls).expect("nulls read as NaN");
        assert!(back.median.is_nan() && back.spread.is_nan() && back.outliers[0].is_nan());
    }

    #[test]
    fn nothing_to_judge() {
        assert!(Rounds::judge(&[], 0.1).is_none());
        assert!(Rounds::judge(&[f64::NAN], 0.1).is_none());
        let one = Rounds::judge(&[3.0], 0.1).unwrap();
        assert_eq!((one.median, one.spread, one.stable), (3.0, 0.0, true));
    }
}
