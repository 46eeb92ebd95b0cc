//! Example: servesim's CPython GIL against CPython's GIL algorithm in C, on glibc's
//! condition variable and on a plain one.
//!
//! `python/gil_condvar.c` runs `take_gil`/`drop_gil` of `Python/ceval_gil.c` with no
//! interpreter: T threads each spin `--held-us` with the GIL held, drop it for a "call" of
//! `--call-us`, and take it back, over and over. Built twice — on glibc's `pthread_cond_t`
//! (what CPython uses) and on a futex condition variable whose signal never blocks — it
//! measures what the condition variable and the kernel alone do to T threads trading the
//! GIL: segments per second, and per segment the process's CPU, its voluntary switches and
//! the time its threads waited for a CPU. servesim's column of switches is its threads'
//! sleeps on the GIL (`gil_sleeps_per_request` of `servesim simulate --json`). A second table
//! compares the GIL's *tenures* — the takes one thread makes in a row, barging back in after
//! its calls, from the switch that gave it the GIL to the next: switches a segment, and the
//! share of the time in tenures of 1 ms or more (`gil_switches_per_request`,
//! `gil_long_tenure_share`), where a many-thread service's long latencies come from.
//!
//! servesim predicts the same from the segment's two lengths and this machine's wake-up
//! costs (measured first, as `servesim calibrate` measures them), `worker.lock = "gil"`,
//! cores as time slices of the length the kernel enforces (measured). Its condition variable
//! is the plain one; the table shows how far each is from it.
//!
//! ```text
//! cargo run --release --example gil_condvar
//! cargo run --release --example gil_condvar -- --threads 1,2,4,8,16 --held-us 4.4 --call-us 1.0 --seconds 1.5
//! cargo run --release --example gil_condvar -- --smoke     # 1 and 4 threads, 0.3 s each (CI)
//! ```
//!
//! Needs a C compiler (`$CC`, else `cc`) and Linux; without them it says so and stops
//! without failing. Nothing is written.

use servesim::scenario::{LockKind, Scenario, Scheduler};
use servesim::workload::Dist;
use std::path::{Path, PathBuf};
use std::process::Command;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Release points per simulated request: the segments a request is made of.
const SEGMENTS: u32 = 1000;

/// One measurement of the C program.
#[derive(Debug, Clone, Copy)]
struct Measured {
    segments_per_s: f64,
    cpu_us: f64,
    switches: f64,
    waiting_us: f64,
    /// Switches of the GIL (tenures ended) a segment.
    gil_switches: f64,
    /// Share of the run spent in tenures of 1 ms or more.
    long_tenures: f64,
}

/// The number just before `key` in `line`.
fn num_before(line: &str, key: &str) -> Option<f64> {
    let head = &line[..line.find(key)?];
    head.split_whitespace().last()?.trim_start_matches('(').parse().ok()
}

/// The C program's output: its first line, e.g. `glibc T=8 held 4.40 us call 1.00 us:
/// 112196 segments/s = …; CPU 11.00 us, 0.557 voluntary switches and 14.04 us waiting for a
/// CPU a segment; …`, and its tenures' line, e.g. `  tenures: 14731 (0.0795 a segment),
/// mean 126.7 us, 12.19 takes; 0.350 of the time in tenures of 1 ms or more; …`.
fn parse(text: &str) -> Option<Measured> {
    let first = text.lines().next()?;
    let tenures = text.lines().find(|l| l.trim_start().starts_with("tenures:"))?;
    Some(Measured {
        segments_per_s: num_before(first, " segments/s")?,
        cpu_us: num_before(first, " us, ")?,
        switches: num_before(first, " voluntary switches")?,
        waiting_us: num_before(first, " us waiting for a CPU")?,
        gil_switches: num_before(tenures, " a segment)")?,
        long_tenures: num_before(tenures, " of the time in tenures")?,
    })
}

/// Builds the C program (`plain`: on the plain condition variable) into `dir`.
fn build(root: &Path, dir: &Path, plain: bool) -> std::result::Result<PathBuf, String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = dir.join(if plain { "gil_condvar_plain" } else { "gil_condvar" });
    let mut cmd = Command::new(&cc);
    cmd.args(["-O2", "-pthread"]);
    if plain {
        cmd.arg("-DPLAIN");
    }
    cmd.arg(root.join("python/gil_condvar.c")).arg("-o").arg(&out);
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(out),
        Ok(o) => Err(format!("{cc} failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Err(format!("no C compiler ({cc}: {e}); set CC to one")),
    }
}

fn run(bin: &Path, threads: u32, held_us: f64, call_us: f64, seconds: f64) -> Result<Measured> {
    let o = Command::new(bin)
        .args([threads.to_string(), held_us.to_string(), call_us.to_string(), seconds.to_string()])
        .output()?;
    let text = String::from_utf8_lossy(&o.stdout);
    if !o.status.success() {
        return Err(format!("{} failed: {}", bin.display(), String::from_utf8_lossy(&o.stderr).trim()).into());
    }
    parse(&text)
        .ok_or_else(|| format!("{} printed what this example cannot read: {text}", bin.display()).into())
}

/// servesim's prediction.
struct Predicted {
    segments_per_s: f64,
    /// CPU per segment (µs).
    cpu_us: f64,
    /// Its threads' sleeps on the GIL per segment (the voluntary switches it predicts).
    sleeps: f64,
    /// Switches of the GIL (tenures ended) per segment.
    gil_switches: f64,
    /// Share of the time in tenures of 1 ms or more.
    long_tenures: f64,
}

fn predict(
    threads: u32,
    held_us: f64,
    call_us: f64,
    cores: u32,
    slice_ms: f64,
    wake: &servesim::experiment::Wake,
) -> Result<Predicted> {
    let mut sc = Scenario::defaults();
    sc.system.cores = cores;
    sc.system.scheduler = Scheduler::Slice;
    sc.system.slice_ms = slice_ms;
    sc.worker.threads = threads;
    sc.worker.lock = LockKind::Gil;
    sc.clients.users = threads;
    sc.workload.new_tokens = Dist::Const(1.0);
    let k = f64::from(SEGMENTS);
    sc.cost.token_locked_ms = Dist::Const(held_us * k / 1e3);
    sc.cost.token_free_ms = Dist::Const(call_us * k / 1e3);
    sc.cost.release_points = SEGMENTS;
    wake.apply(&mut sc.cost);
    sc.run.requests = 1500;
    sc.run.warmup_requests = 100 + 4 * u64::from(threads);
    sc.run.replications = 2;
    sc.validate()?;
    let r = servesim::sim::simulate(&sc)?;
    let f = &r.figures;
    let per_s = f.throughput_rps * k;
    let cpu_us = f.utilization.cores * f64::from(cores) * 1e6 / per_s.max(1e-9);
    Ok(Predicted {
        segments_per_s: per_s,
        cpu_us,
        sleeps: f.gil_sleeps_per_request / k,
        gil_switches: f.gil_switches_per_request / k,
        long_tenures: f.gil_long_tenure_share,
    })
}

/// CPython's GIL algorithm in C (python/gil_condvar.c), on glibc's condition variable and on
/// a plain futex one, against servesim's simulation of the same: per segment, the CPU, the
/// voluntary switches, the GIL's switches and its long tenures.
#[derive(clap::Parser, Debug)]
#[command(name = "gil_condvar", allow_negative_numbers = true)]
struct Args {
    /// Thread counts, comma-separated, from 1 to 256 (default 1,2,4,8,16; 1,4 with --smoke).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: Vec<u32>,
    /// Bytecode per segment, the GIL held (µs; > 0).
    #[arg(long, default_value_t = 4.4, value_parser = positive)]
    held_us: f64,
    /// C call per segment, the GIL released (µs; ≥ 0).
    #[arg(long, default_value_t = 1.0, value_parser = non_negative)]
    call_us: f64,
    /// Seconds each run lasts, in (0, 60] (default 1.5; 0.3 with --smoke).
    #[arg(long, value_parser = seconds)]
    seconds: Option<f64>,
    /// Two thread counts, short runs (CI).
    #[arg(long)]
    smoke: bool,
}

fn number(s: &str) -> std::result::Result<f64, String> {
    s.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| format!("{s:?} is not a number"))
}

fn positive(s: &str) -> std::result::Result<f64, String> {
    number(s).and_then(|x| if x > 0.0 { Ok(x) } else { Err(format!("must be > 0, got {x}")) })
}

fn non_negative(s: &str) -> std::result::Result<f64, String> {
    number(s).and_then(|x| if x >= 0.0 { Ok(x) } else { Err(format!("must be ≥ 0, got {x}")) })
}

fn seconds(s: &str) -> std::result::Result<f64, String> {
    positive(s).and_then(|x| if x <= 60.0 { Ok(x) } else { Err(format!("must be at most 60, got {x}")) })
}

fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let (held_us, call_us, smoke) = (args.held_us, args.call_us, args.smoke);
    let seconds = args.seconds.unwrap_or(if smoke { 0.3 } else { 1.5 });
    let threads = match args.threads {
        t if !t.is_empty() => t,
        _ if smoke => vec![1, 4],
        _ => vec![1, 2, 4, 8, 16],
    };
    if !cfg!(target_os = "linux") {
        println!("skipped: the C program reads Linux's /proc and futexes");
        return Ok(());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/gil_condvar");
    std::fs::create_dir_all(&dir)?;
    let bins = match (build(root, &dir, false), build(root, &dir, true)) {
        (Ok(g), Ok(p)) => (g, p),
        (Err(e), _) | (_, Err(e)) => {
            println!("skipped: the C program could not be built: {e}");
            return Ok(());
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);

    // The C program first, with nothing else running; then the machine's costs.
    let mut rows = Vec::new();
    for &t in &threads {
        eprintln!("measuring {t} thread(s), glibc and plain…");
        let glibc = run(&bins.0, t, held_us, call_us, seconds)?;
        let plain = run(&bins.1, t, held_us, call_us, seconds)?;
        rows.push((t, glibc, plain));
    }
    eprintln!("measuring this machine's wake-up costs and time slice…");
    let wake = servesim::experiment::wake_costs();
    let slice = servesim::experiment::slice::measure(std::time::Duration::from_millis(500))?;
    eprintln!("  {}; time slice {:.2} ms ({})", wake.describe(), slice.ms, slice.source);
    let predicted = threads
        .iter()
        .map(|&t| predict(t, held_us, call_us, cores, slice.ms, &wake))
        .collect::<Result<Vec<_>>>()?;
    let (g1, p1, sim1) = (rows[0].1.segments_per_s, rows[0].2.segments_per_s, predicted[0].segments_per_s);
    println!(
        "\n{cores} cores, {held_us} µs held + {call_us} µs released a segment; throughput relative to {} thread(s) \
         of each; per segment: CPU (µs), voluntary switches, µs waiting for a CPU\n",
        threads[0]
    );
    println!(
        "{:>4} {:>8} {:>8} {:>8}   {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9}   {:>10} {:>9}",
        "T",
        "glibc",
        "plain",
        "servesim",
        "CPU glibc",
        "plain",
        "servesim",
        "sw glibc",
        "plain",
        "servesim",
        "wait glibc",
        "plain"
    );
    for ((t, g, p), sim) in rows.iter().zip(&predicted) {
        println!(
            "{:>4} {:>8.2} {:>8.2} {:>8.2}   {:>9.2} {:>9.2} {:>9.2}   {:>9.3} {:>9.3} {:>9.3}   {:>10.2} {:>9.2}",
            t,
            g.segments_per_s / g1,
            p.segments_per_s / p1,
            sim.segments_per_s / sim1,
            g.cpu_us,
            p.cpu_us,
            sim.cpu_us,
            g.switches,
            p.switches,
            sim.sleeps,
            g.waiting_us,
            p.waiting_us
        );
    }
    println!(
        "\nthe GIL's tenures (one thread's takes in a row, switch to switch): switches a segment, \
         and the share of the time in tenures of 1 ms or more\n"
    );
    println!(
        "{:>4} {:>9} {:>9} {:>9}   {:>10} {:>9} {:>9}",
        "T", "sw glibc", "plain", "servesim", "≥1ms glibc", "plain", "servesim"
    );
    for ((t, g, p), sim) in rows.iter().zip(&predicted) {
        println!(
            "{:>4} {:>9.4} {:>9.4} {:>9.4}   {:>10.3} {:>9.3} {:>9.3}",
            t,
            g.gil_switches,
            p.gil_switches,
            sim.gil_switches,
            g.long_tenures,
            p.long_tenures,
            sim.long_tenures
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_c_programs_line() {
        let text = "glibc T=8 held 4.40 us call 1.00 us: 112196 segments/s = 0.61x one thread's 185185; \
                    CPU 11.00 us, 0.557 voluntary switches and 14.04 us waiting for a CPU a segment; \
                    signals: mean 2.31 us, 10.19% over 5 us (mean 20.4 us)\n  \
                    the GIL a segment: held 5.56 us a hold; …\n  \
                    tenures: 14731 (0.0795 a segment), mean 126.7 us, 12.19 takes; 0.350 of the time \
                    in tenures of 1 ms or more; share of takes in tenures of 1, …: 0.022 0.046\n";
        let m = parse(text).expect("parses");
        assert_eq!(m.segments_per_s, 112196.0);
        assert_eq!(m.cpu_us, 11.0);
        assert_eq!(m.switches, 0.557);
        assert_eq!(m.waiting_us, 14.04);
        assert_eq!((m.gil_switches, m.long_tenures), (0.0795, 0.35));
        assert!(parse("something else").is_none());
        assert!(parse(text.lines().next().unwrap()).is_none(), "the tenures' line is needed");
    }
}
