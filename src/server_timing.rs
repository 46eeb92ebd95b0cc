//! The W3C `Server-Timing` response header (<https://www.w3.org/TR/server-timing/>), as
//! servesim reads it from any service and writes it on its own server's `/correct` replies.
//!
//! ```text
//!  Server-Timing: queue;dur=0.012, lock;dur=0.210, held;dur=6.900, free;dur=1.500
//! ```
//!
//! A header is a comma-separated list of metrics, each a name and optional `;`-separated
//! parameters; `dur` is a duration in milliseconds. servesim reads these names (any other
//! is kept, and ignored by the fit):
//!
//! | name    | what the request spent (ms)                                         |
//! |---------|---------------------------------------------------------------------|
//! | `queue` | waiting before its handler started (event loop, admission, thread)  |
//! | `lock`  | waiting for the lock (the GIL), all acquisitions                    |
//! | `held`  | working with the lock held (interpreter bytecode)                   |
//! | `free`  | working without the lock (native calls that release it)             |
//! | `loop`  | working on the event loop (parse, serialize), when known            |
//!
//! `compute` is read as `free` (a service that knows only its handler's compute time and
//! nothing held reports all of it as free).

use std::fmt::Write as _;

/// One metric of a header: its name and, if given, its `dur` (ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric's name (a token).
    pub name: String,
    /// Its duration (ms), when the header gives one.
    pub dur_ms: Option<f64>,
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "malformed Server-Timing header {header:?}: {problem} (expected e.g. \"held;dur=6.9, free;dur=1.5\")"
)]
pub struct TimingError {
    /// The header as received.
    pub header: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A request's time by stage, from its `Server-Timing` header (ms; `None`: not reported).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stages {
    /// Waiting before the handler started.
    pub queue: Option<f64>,
    /// Waiting for the lock.
    pub lock: Option<f64>,
    /// Working with the lock held.
    pub held: Option<f64>,
    /// Working without the lock.
    pub free: Option<f64>,
    /// Working on the event loop.
    #[serde(rename = "loop")]
    pub event_loop: Option<f64>,
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses a header's value into its metrics.
pub fn parse(header: &str) -> Result<Vec<Metric>, TimingError> {
    let bad = |problem: String| TimingError { header: header.to_owned(), problem };
    let mut out = Vec::new();
    for entry in header.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        if !is_token(name) {
            return Err(bad(format!("metric name {name:?} is not a token")));
        }
        let mut dur_ms = None;
        for param in parts {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            if !is_token(k) {
                return Err(bad(format!("parameter {param:?} of {name:?} has no name")));
            }
            if k.eq_ignore_ascii_case("dur") {
                let d: f64 = v.parse().map_err(|_| bad(format!("{name}: dur={v:?} is not a number")))?;
                if !d.is_finite() || d < 0.0 {
                    return Err(bad(format!("{name}: dur={v} must be a finite duration ≥ 0 (ms)")));
                }
                dur_ms = Some(d);
            }
        }
        out.push(Metric { name: name.to_owned(), dur_ms });
    }
    Ok(out)
}

impl Stages {
    /// The stages a header reports; a name given twice adds up (the standard allows it).
    pub fn parse(header: &str) -> Result<Self, TimingError> {
        let mut s = Self::default();
        for m in parse(header)? {
            let Some(d) = m.dur_ms else { continue };
            let slot = match m.name.to_ascii_lowercase().as_str() {
                "queue" => &mut s.queue,
                "lock" => &mut s.lock,
                "held" => &mut s.held,
                "free" | "compute" => &mut s.free,
                "loop" => &mut s.event_loop,
                _ => continue,
            };
            *slot = Some(slot.unwrap_or(0.0) + d);
        }
        Ok(s)
    }

    /// The header's value for these stages (ms with 3 decimals), the unreported left out.
    pub fn header(&self) -> String {
        let mut out = String::new();
        for (name, v) in ["queue", "lock", "held", "free", "loop"].into_iter().zip(self.values()) {
            if let Some(v) = v {
                let sep = if out.is_empty() { "" } else { ", " };
                let _ = write!(out, "{sep}{name};dur={v:.3}");
            }
        }
        out
    }
}

/// Stage times over many responses: the mean and the 95th percentile of each stage (ms),
/// over the responses whose header reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageStats {
    /// Responses whose header could be read.
    pub responses: u64,
    /// Mean of each stage (ms).
    pub mean: Stages,
    /// 95th percentile of each stage (ms): the smallest value with at least 95% of the
    /// responses at or below it.
    pub p95: Stages,
}

impl StageStats {
    /// The stages of these header values, or `None` when none reports a stage; and, when
    /// some could not be read, the first one's problem with their count (they are left out).
    pub fn of<'a>(headers: impl IntoIterator<Item = &'a str>) -> (Option<Self>, Option<String>) {
        let mut samples: [Vec<f64>; 5] = Default::default();
        let (mut responses, mut bad, mut first) = (0, 0u64, None);
        for h in headers {
            match Stages::parse(h) {
                Ok(s) => {
                    responses += 1;
                    for (v, out) in s.values().into_iter().zip(&mut samples) {
                        out.extend(v);
                    }
                }
                Err(e) => {
                    bad += 1;
                    first.get_or_insert(e.to_string());
                }
            }
        }
        let note = first.map(|f| format!("{bad} response(s) had a malformed header: {f}"));
        if samples.iter().all(Vec::is_empty) {
            return (None, note);
        }
        let mean =
            samples.each_ref().map(|v| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64));
        let p95 = samples.map(|mut v| {
            v.sort_by(f64::total_cmp);
            let rank = (0.95 * v.len() as f64).ceil() as usize;
            v.get(rank.max(1) - 1).copied()
        });
        (Some(Self { responses, mean: Stages::from_values(mean), p95: Stages::from_values(p95) }), note)
    }
}

impl Stages {
    /// The stages in the order queue, lock, held, free, loop.
    pub fn values(&self) -> [Option<f64>; 5] {
        [self.queue, self.lock, self.held, self.free, self.event_loop]
    }

    fn from_values([queue, lock, held, free, event_loop]: [Option<f64>; 5]) -> Self {
        Self { queue, lock, held, free, event_loop }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_standards_examples_and_servesims_names() {
        let m = parse("miss, db;dur=53, app;dur=47.2;desc=\"templates\"").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].name.as_str(), m[0].dur_ms), ("miss", None));
        assert_eq!(m[2].dur_ms, Some(47.2));
        let s = Stages::parse("queue;dur=0.5, lock;dur=1, held;dur=6.9, free;dur=1.5, held;dur=0.1").unwrap();
        assert_eq!(s.queue, Some(0.5));
        assert_eq!(s.held, Some(7.0), "a repeated name adds up");
        assert_eq!(s.event_loop, None);
        assert_eq!(Stages::parse(&s.header()).unwrap(), s, "written as it is read");
        assert_eq!(Stages::parse("compute;dur=3").unwrap().free, Some(3.0));
    }

    #[test]
    fn stage_stats_are_means_and_nearest_rank_p95s_over_the_responses_that_report_them() {
        // 20 responses: queue 1…20 ms, lock 0; held only in the first; one malformed.
        let headers: Vec<String> = (1..=20)
            .map(|i| {
                let held = if i == 1 { ", held;dur=7" } else { "" };
                format!("queue;dur={i}, lock;dur=0{held}")
            })
            .chain(["queue;dur=x".to_owned()])
            .collect();
        let (s, note) = StageStats::of(headers.iter().map(String::as_str));
        let s = s.expect("stages");
        assert_eq!(s.responses, 20);
        assert_eq!((s.mean.queue, s.p95.queue), (Some(10.5), Some(19.0)), "rank ⌈0.95 × 20⌉ = 19");
        assert_eq!((s.mean.lock, s.p95.lock), (Some(0.0), Some(0.0)));
        assert_eq!((s.mean.held, s.p95.held), (Some(7.0), Some(7.0)));
        assert_eq!((s.mean.free, s.p95.event_loop), (None, None));
        assert!(note.is_some_and(
            |n| n.starts_with("1 response(s) had a malformed header") && n.contains("not a number")
        ));
        assert_eq!(StageStats::of(["miss, db;dur=53"]), (None, None), "no stage of servesim's");
    }

    #[test]
    fn a_malformed_header_names_its_problem() {
        for (h, needle) in [
            ("held;dur=abc", "not a number"),
            ("held;dur=-1", "≥ 0"),
            ("held;dur=inf", "finite"),
            (";dur=1", "not a token"),
            ("held dur=1", "not a token"),
        ] {
            let e = Stages::parse(h).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("Server-Timing"), "{h}: {e}");
        }
    }
}
