//! Sweep speed: a 1,000-point grid of `models/seed-sync.toml` (10,000 requests per
//! replication, 5 replications per point), simulated in parallel on every core.
//!
//! Run: `cargo bench --bench sweep`. Prints the wall time and simulated requests per second.
//! (One run of a minutes-long job: criterion's repeated sampling would add nothing.)

use servesim::experiment::SweepPlan;
use servesim::experiment::grid::{Grid, Shard};
use servesim::scenario::Override;
use std::path::Path;
use std::time::Instant;

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name this bench skips it.
    if std::env::args().skip(1).any(|a| !a.starts_with('-') && !"sweep".contains(a.as_str())) {
        return;
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/seed-sync.toml");
    let sets: Vec<Override> =
        ["run.requests=10000", "run.replications=5"].iter().map(|s| s.parse().unwrap()).collect();
    // 40 user counts × 25 thread counts = 1,000 points.
    let grid =
        Grid::new(vec!["clients.users=1..=40".parse().unwrap(), "worker.threads=1..=25".parse().unwrap()])
            .expect("a valid grid");
    let plan = SweepPlan::new(&file, &sets, grid, Shard::default()).expect("a valid sweep");
    let points = plan.len();
    let start = Instant::now();
    let out = plan.run(&|| {}).expect("the sweep runs");
    let wall = start.elapsed().as_secs_f64();
    let requests: u64 = out.points.iter().map(|p| p.report.completed).sum();
    let events: u64 = out.points.iter().map(|p| p.report.events).sum();
    println!("sweep: {points} points of seed-sync, 10,000 requests × 5 replications each");
    println!("  threads (rayon): {}", rayon::current_num_threads());
    println!("  wall time:       {wall:.1} s");
    println!(
        "  measured requests: {requests} ({:.0} requests/s, {:.1} M events/s)",
        requests as f64 / wall,
        events as f64 / wall / 1e6
    );
}
