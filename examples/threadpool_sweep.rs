//! Example: how many threads does a GIL-bound `def` handler need?
//!
//! 32 closed-loop users against one worker of `models/validate.toml` (2 cores, `sync`
//! handler, the GIL held for 0.25 ms and released for 0.15 ms of each token's emulated
//! work), with `worker.threads` = 1, 2, 4, 8, 16; predicted and measured. One thread leaves
//! the second core idle but never hands the GIL over; a second thread overlaps one
//! request's GIL-free matmuls with another's interpreter work, and pays a hand-off — a
//! wake-up of a parked thread — at every release around a kernel (13 a token). Which of the
//! two weighs more depends on the machine: where waking a thread is dear, one thread beats a
//! pool (Beazley's convoy). The example checks that the simulator says the same as the
//! measurement — whether a second thread helps or hurts — that no prediction exceeds its own
//! capacity bound, and that every prediction is within 25% of its measurement for
//! throughput, 40% for p95 (a tail of 150 requests).
//!
//! Run: `cargo build --release && cargo run --release --example threadpool_sweep`. The server
//! is the `servesim` binary, which `cargo run --example` does not build. About 30 s on a quiet
//! 2-core machine; before each measured point it waits (2 minutes at most in all) while other
//! processes keep the CPUs busy, since a build beside the server takes a core from it. On a
//! shared machine, wrap it in `flock /tmp/servesim-measure.lock …`. Writes
//! `plots/threadpool-throughput.{png,svg}` and `plots/threadpool-p95.{png,svg}`.

use servesim::experiment::{Axis, Compared, Suite, ValidatedPoint};
use servesim::plot::{Chart, Point, Series, SeriesKind};
use servesim::scenario::Override;

mod common;
use common::{calibration, root, validate_quietly};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const THREADS: &str = "worker.threads=1,2,4,8,16";
const USERS: u32 = 32;
/// Largest |predicted − measured| / measured accepted for throughput and p95.
const AGREEMENT: f64 = 0.25;
const AGREEMENT_P95: f64 = 0.40;
/// Below this relative gap between one thread and two, the two count as a tie.
const TIE: f64 = 0.05;

fn threads(p: &ValidatedPoint) -> f64 {
    p.params.iter().find(|(k, _)| k == "worker.threads").and_then(|(_, v)| v.parse().ok()).unwrap_or(f64::NAN)
}

fn print_table(points: &[ValidatedPoint]) {
    println!("{:>7}  {:>26}  {:>24}  {:>10}", "threads", "throughput req/s", "p95 ms", "bound");
    println!("{:>7}  {:>26}  {:>24}  {:>10}", "", "pred ± CI / meas / err", "pred / meas / err", "req/s");
    for p in points {
        let (x, l) = (&p.throughput_rps, &p.p95_ms);
        println!(
            "{:>7}  {:>26}  {:>24}  {:>10.1}",
            threads(p),
            format!("{:.1}±{:.1} / {:.1} / {:+.1}%", x.predicted, x.predicted_ci95, x.measured, x.error_pct),
            format!("{:.1} / {:.1} / {:+.1}%", l.predicted, l.measured, l.error_pct),
            p.capacity_rps,
        );
    }
}

fn chart(
    points: &[ValidatedPoint],
    metric: &str,
    y_label: &str,
    get: fn(&ValidatedPoint) -> &Compared,
) -> Chart {
    let mut series = vec![
        Series {
            label: "predicted".into(),
            kind: SeriesKind::Band,
            color: 0,
            points: points
                .iter()
                .map(|p| Point::with_half_width(threads(p), get(p).predicted, get(p).predicted_ci95))
                .collect(),
        },
        Series {
            label: "measured".into(),
            kind: SeriesKind::Points,
            color: 1,
            points: points
                .iter()
                .map(|p| {
                    let c = get(p);
                    Point { x: threads(p), y: c.measured, lo: c.measured_lo, hi: c.measured_hi }
                })
                .collect(),
        },
    ];
    if metric == "throughput" {
        series.push(Series {
            label: "capacity bound (cores, lock, threads)".into(),
            kind: SeriesKind::Reference,
            color: 2,
            points: points.iter().map(|p| Point::with_half_width(threads(p), p.capacity_rps, 0.0)).collect(),
        });
    }
    Chart {
        title: format!("Threadpool size under the GIL, {USERS} users, 2 cores: {metric}"),
        x_label: "worker.threads".into(),
        y_label: y_label.into(),
        log_x: true,
        series,
    }
}

/// Whether a second thread helps (`Some(true)`), hurts (`Some(false)`) or ties, in one
/// backend.
fn second_thread_helps(points: &[ValidatedPoint], get: fn(&Compared) -> f64) -> Option<bool> {
    let (one, two) = (get(&points[0].throughput_rps), get(&points[1].throughput_rps));
    ((two / one - 1.0).abs() > TIE).then_some(two > one)
}

fn main() -> Result<()> {
    let base = root().join("models/validate.toml");
    let (cal, _) = calibration(&base)?;
    let fixed: Vec<Override> =
        ["worker.handler=sync", "worker.lock=fair-gil", &format!("clients.users={USERS}")]
            .iter()
            .map(|s| s.parse())
            .collect::<std::result::Result<_, _>>()?;
    let suite = Suite { name: "threadpool".into(), file: base, fixed, axes: vec![THREADS.parse::<Axis>()?] };
    let v = validate_quietly(suite, cal)?;
    let mut points = v.points.clone();
    points.sort_by(|a, b| threads(a).total_cmp(&threads(b)));
    println!("Threadpool size, {USERS} users, sync handler, GIL, 2 cores: predicted vs measured\n");
    print_table(&points);

    let stem = root().join("plots");
    let mut files = chart(&points, "throughput", "throughput [req/s]", |p| &p.throughput_rps)
        .save(&stem.join("threadpool-throughput"))?;
    files
        .extend(chart(&points, "p95", "p95 latency [ms]", |p| &p.p95_ms).save(&stem.join("threadpool-p95"))?);

    let helps = second_thread_helps(&points, |c| c.measured);
    if let (Some(p), Some(m)) = (second_thread_helps(&points, |c| c.predicted), helps) {
        assert_eq!(p, m, "the simulator and the measurement disagree on whether a second thread helps");
    }
    for p in &points {
        assert!(
            p.throughput_rps.predicted <= p.capacity_rps * 1.001,
            "{} threads: the simulator exceeds its own bound",
            threads(p)
        );
        for (name, c, band) in
            [("throughput", &p.throughput_rps, AGREEMENT), ("p95", &p.p95_ms, AGREEMENT_P95)]
        {
            assert!(
                c.error_pct.abs() <= band * 100.0,
                "{} threads: {name} predicted {:.1} vs measured {:.1} ({:+.1}%)",
                threads(p),
                c.predicted,
                c.measured,
                c.error_pct
            );
        }
    }
    let (one, many) = (&points[0], &points[points.len() - 1]);
    let peak = points
        .iter()
        .max_by(|a, b| a.throughput_rps.measured.total_cmp(&b.throughput_rps.measured))
        .unwrap_or(one);
    let verdict = match helps {
        Some(true) => "a second thread helps: the overlap on the second core outweighs the hand-offs",
        Some(false) => {
            "a second thread hurts: on this machine the GIL hand-offs cost more than the overlap gains"
        }
        None => "one thread and two tie: overlap and hand-offs cancel out",
    };
    println!(
        "\nOne thread: {:.1} req/s measured ({:.1} predicted); {} threads: {:.1} ({:.1}), under the simulator's \
         capacity bound of {:.1} req/s. Measured, {} threads do best ({:.1} req/s); {verdict}, and the simulator \
         says the same.",
        one.throughput_rps.measured,
        one.throughput_rps.predicted,
        threads(many),
        many.throughput_rps.measured,
        many.throughput_rps.predicted,
        many.capacity_rps,
        threads(peak),
        peak.throughput_rps.measured,
    );
    println!("Wall time {:.0} s.", v.wall_s);
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
