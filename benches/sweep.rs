//! Sweep speed: a 1,000-point grid of `models/seed-sync.toml` (10,000 requests per
//! replication, 5 replications per point), simulated in parallel on every core.
//!
//! Run: `cargo bench --bench sweep`. Prints the wall time, the process's CPU time (so that a
//! run on a machine shared with other work can still be judged: CPU time / cores is the
//! wall time the sweep would take with the cores to itself) and simulated requests per
//! second. (One run of a minutes-long job: criterion's repeated sampling would add nothing.)

use servesim::experiment::SweepPlan;
use servesim::experiment::grid::{Grid, Shard};
use servesim::scenario::Override;
use std::path::Path;
use std::time::Instant;

/// CPU time used by this process so far, all threads (s).
fn process_cpu_s() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc == 0 { ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9 } else { f64::NAN }
}

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
    let (start, cpu0) = (Instant::now(), process_cpu_s());
    let out = plan.run(&|| {}).expect("the sweep runs");
    let (wall, cpu) = (start.elapsed().as_secs_f64(), process_cpu_s() - cpu0);
    let requests: u64 = out.points.iter().map(|p| p.report.completed).sum();
    let events: u64 = out.points.iter().map(|p| p.report.events).sum();
    println!("sweep: {points} points of seed-sync, 10,000 requests × 5 replications each");
    let threads = rayon::current_num_threads();
    println!("  threads (rayon): {threads}");
    println!("  wall time:       {wall:.1} s");
    println!(
        "  CPU time:        {cpu:.1} s ({:.2} cores busy on average; {:.1} s of wall time with {threads} idle cores)",
        cpu / wall,
        cpu / threads as f64
    );
    println!(
        "  measured requests: {requests} ({:.0} requests/s, {:.1} M events/s; {:.2} µs of CPU per request)",
        requests as f64 / wall,
        events as f64 / wall / 1e6,
        cpu / requests as f64 * 1e6
    );
}
