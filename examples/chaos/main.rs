//! Example: a chaos run. servesim's own server, two workers under steady closed-loop load,
//! meets four faults one after the other, each in its own window:
//!
//! 1. **1,000 idle and slow sockets** on the shared port, half silent, half sending a
//!    request head one header line every 200 ms, held for 4 s while `/healthz` is probed on
//!    a new connection every 10 ms and `/correct` on a new connection every 100 ms;
//! 2. **`kill -9`** of worker 0; the window lasts 3 s;
//! 3. **SIGSTOP** of worker 1; its heartbeat stops (`limits.heartbeat_timeout_ms` is 1 s
//!    here) and the supervisor's watchdog must kill and replace it; the window lasts 4 s;
//! 4. **SIGTERM** to the server; from the signal on the clients send nothing new (a load
//!    balancer takes a server that is stopping out of rotation), and the window lasts until
//!    the server has stopped.
//!
//! The load: 8 closed-loop clients on keep-alive connections sending `/correct` (2 ms of
//! emulated work a request), each reconnecting at once after a failure and never sending a
//! request twice, so every request the server loses is counted. Its first 3.5 s, the first
//! 0.5 s left out, are the steady baseline.
//!
//! One row per fault, over the requests that overlap its window (outstanding when it began,
//! or sent during it): how many; answered (any HTTP response); lost (no response: reset,
//! closed, refused or timed out); answered 5xx; the p99 latency of those answered; and the
//! time to recover: from the fault to the end of the last *degraded* 100 ms window within
//! the fault's window — one with fewer answers than half the baseline's, a p99 over twice
//! the baseline's, or a lost request (the baseline's figures are the medians over its own
//! 100 ms windows). 0 means no 100 ms window was degraded; a window degraded at the very
//! end means the service had not recovered. The SIGTERM row shows how long the server took
//! to stop instead. The last column is the share of the machine's CPU time other processes
//! took in the window: on a shared machine a build beside the server degrades any window.
//!
//! Targets: with 1,000 idle and slow sockets, `/healthz` p99 ≤ 50 ms and `/correct` still
//! served; a killed worker: the service goes on (answers in every 100 ms window), the
//! replacement is ready within 2 s, and no more requests are lost than the killed worker
//! held — sent on a connection it had answered on, before it had exited, and not answered
//! before the kill; a stopped worker is replaced by the watchdog; SIGTERM loses no request.
//! The example asserts those that do not depend on the machine's speed and prints each
//! target met or missed.
//!
//! It waits first (30 s at most) for other processes to leave the CPUs alone. Loopback
//! only; every loop is bounded in count and time; the server is stopped, and a stopped
//! worker continued, even when the run fails.
//!
//! Run: `cargo build --release && cargo run --release --example chaos` (about 20 s, plus
//! the wait for quiet CPUs).

#[path = "../common/mod.rs"]
mod common;
mod cpu;
mod faults;
mod load;
mod windows;

use faults::{Probes, Replaced, fault_worker, sleep_until, slow_sockets};
use load::{Load, Rec};
use servesim::scenario::Scenario;
use servesim::server::{
    LaunchOptions, Limits, ServerConfig, ServerProcess, SupervisorStats, resolve_model_dir,
};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use windows::{
    BASELINE, Baseline, Recovery, Row, baseline, buckets, done_within, first_answer, held_and_lost_elsewhere,
    p99, recovery, row,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const HEARTBEAT_MS: f64 = 1_000.0;
/// Per request, connect and probe.
const TIMEOUT: Duration = Duration::from_secs(10);
const KILL_WINDOW: Duration = Duration::from_secs(3);
const STOP_WINDOW: Duration = Duration::from_secs(4);
const GAP: Duration = Duration::from_millis(500);
const HEALTHZ_P99_TARGET_MS: f64 = 50.0;
const REPLACEMENT_TARGET: Duration = Duration::from_secs(2);
/// The longest the run waits for other processes to leave the CPUs alone.
const QUIET_BUDGET: Duration = Duration::from_secs(30);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn start_server() -> Result<ServerProcess> {
    let toml = "[system]\nworkers = 2\ncores = 2\n[cost]\nrequest_free_ms = 2\n";
    let sc = Scenario::parse(toml, Path::new("chaos"), Path::new("."), &[])?;
    let limits = Limits { heartbeat_timeout_ms: HEARTBEAT_MS, ..Limits::default() };
    let config = ServerConfig::from_scenario(&sc, limits, resolve_model_dir(None))?;
    Ok(ServerProcess::start(&config, &LaunchOptions::default())?)
}

/// Raises this process's soft descriptor limit to its hard one: it holds 1,000 sockets.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn print_table(rows: &[Row], base: &Baseline) {
    println!(
        "\nChaos run: 2 workers, {} closed-loop keep-alive clients; baseline per 100 ms: {:.0} answers, \
         p99 {:.1} ms",
        load::CLIENTS,
        base.answers,
        base.p99_ms
    );
    println!(
        "{:<26} {:>8} {:>9} {:>6} {:>5} {:>9} {:>20} {:>11}",
        "fault", "requests", "answered", "lost", "5xx", "p99 ms", "recovered", "others' CPU"
    );
    for r in rows {
        let rec = match r.recovery {
            Recovery::None => "-".into(),
            Recovery::After(d) => format!("{:.0} ms", ms(d)),
            Recovery::Not => "not in its window".into(),
            Recovery::Stopped(d) => format!("stopped in {:.0} ms", ms(d)),
        };
        println!(
            "{:<26} {:>8} {:>9} {:>6} {:>5} {:>9.1} {:>20} {:>11}",
            r.name,
            r.requests,
            r.answered,
            r.lost,
            r.status_5xx,
            r.p99_ms,
            rec,
            r.others_cpu.map_or("-".into(), |c| format!("{:.0}%", c * 100.0))
        );
    }
}

/// A target, whether it was met, and the figures.
struct Target {
    what: &'static str,
    /// Met on any machine: lost requests, replacements. Timings are not.
    hard: bool,
    met: bool,
    detail: String,
}

/// The targets of faults 1 to 3.
fn targets(
    recs: &[Rec],
    rows: &[Row],
    probes: &Probes,
    (killed, kill): (&Replaced, (Duration, Duration)),
    (stopped, stop): (&Replaced, (Duration, Duration)),
    kills_before: u64,
    supervisor: &SupervisorStats,
) -> Vec<Target> {
    let healthz_p99 = p99(probes.healthz_ms.clone());
    let quietest = buckets(kill.0, kill.1).map(|(a, b)| done_within(recs, a, b).0).min().unwrap_or(0);
    let answered = first_answer(recs, killed.replacement, killed.at);
    let (held_k, elsewhere_k) = held_and_lost_elsewhere(recs, killed, kill);
    let (held_s, elsewhere_s) = held_and_lost_elsewhere(recs, stopped, stop);
    vec![
        Target {
            what: "(1) /healthz p99 <= 50 ms with 1,000 idle/slow sockets",
            hard: false,
            met: healthz_p99 <= HEALTHZ_P99_TARGET_MS && probes.healthz_failed == 0,
            detail: format!(
                "{healthz_p99:.1} ms over {} probes, {} failed",
                probes.healthz_ms.len(),
                probes.healthz_failed
            ),
        },
        Target {
            what: "(1) /correct still served",
            hard: true,
            met: probes.correct_failed == 0 && probes.correct_ok > 0 && rows[1].answered > 0,
            detail: format!(
                "{} of {} probes on new connections; {} answers to the load",
                probes.correct_ok,
                probes.correct_ok + probes.correct_failed,
                rows[1].answered
            ),
        },
        Target {
            what: "(2) the service continues (answers every 100 ms)",
            hard: false,
            met: quietest > 0,
            detail: format!("fewest answers in a 100 ms window: {quietest}"),
        },
        Target {
            what: "(2) the replacement is ready within 2 s",
            hard: false,
            met: killed.listed - killed.at <= REPLACEMENT_TARGET,
            detail: format!(
                "listed {:.0} ms after the kill, first answer after {}",
                ms(killed.listed - killed.at),
                answered.map_or("none".into(), |d| format!("{:.0} ms", ms(d)))
            ),
        },
        Target {
            what: "(2) lost <= in flight on the killed worker",
            hard: true,
            met: elsewhere_k == 0,
            detail: format!("{} lost, {elsewhere_k} of them elsewhere; {held_k} held by it", rows[2].lost),
        },
        Target {
            what: "(3) the watchdog replaces the stopped worker",
            hard: true,
            met: supervisor.watchdog_kills > kills_before,
            detail: format!(
                "killed {:.0} ms after SIGSTOP, replacement listed after {:.0} ms; {} lost, {elsewhere_s} \
                 of them elsewhere; {held_s} held by it",
                ms(stopped.exited - stopped.at),
                ms(stopped.listed - stopped.at),
                rows[3].lost
            ),
        },
    ]
}

fn main() -> Result<()> {
    if servesim::server::find_binary().is_none() {
        return Err("no `servesim` binary next to this example: run `cargo build --release` first".into());
    }
    raise_fd_limit();
    // A build beside the server would take a core from it: every window would look degraded.
    let busy = common::Quiet(QUIET_BUDGET).wait();
    println!("other processes used {:.0}% of the CPUs before the run", busy * 100.0);
    let server = start_server()?;
    let addr = server.addr();
    let load = Load::start(addr);
    let sampler = cpu::Sampler::start(load.t0, server.pid());
    sleep_until(&load, BASELINE.1);

    let (slow, probes) = slow_sockets(&load, addr)?;
    sleep_until(&load, slow.1 + GAP);
    let killed = fault_worker(&server, &load, 0, libc::SIGKILL)?;
    let kill = (killed.at, killed.at + KILL_WINDOW);
    sleep_until(&load, kill.1 + GAP);
    let kills_before = server.supervisor_stats()?.watchdog_kills;
    let stopped = fault_worker(&server, &load, 1, libc::SIGSTOP)?;
    let stop = (stopped.at, stopped.at + STOP_WINDOW);
    sleep_until(&load, stop.1 + GAP);
    let supervisor = server.supervisor_stats()?;

    load.quiet.store(true, Relaxed);
    let term_at = load.now();
    server.terminate();
    let stopped_line = server.wait(Duration::from_secs(60))?;
    let term = (term_at, load.now());
    let recs = load.finish()?;
    let samples = sampler.finish();

    let base = baseline(&recs);
    let rows = [
        row("steady (baseline)", &recs, BASELINE, Recovery::None, &samples),
        row("1,000 idle/slow sockets", &recs, slow, recovery(&recs, slow, &base), &samples),
        row("kill -9 worker 0", &recs, kill, recovery(&recs, kill, &base), &samples),
        row("SIGSTOP worker 1", &recs, stop, recovery(&recs, stop, &base), &samples),
        row("SIGTERM the server", &recs, term, Recovery::Stopped(term.1 - term.0), &samples),
    ];
    print_table(&rows, &base);
    println!(
        "supervisor before SIGTERM: {} restarts, {} watchdog kills (expected 2 and 1)",
        supervisor.restarts, supervisor.watchdog_kills
    );

    let targets =
        targets(&recs, &rows, &probes, (&killed, kill), (&stopped, stop), kills_before, &supervisor)
            .into_iter()
            .chain([Target {
                what: "(4) SIGTERM under load: 0 lost",
                hard: true,
                met: rows[4].lost == 0 && stopped_line.clean,
                detail: format!(
                    "{} lost of {} in flight; stopped clean: {}",
                    rows[4].lost, rows[4].requests, stopped_line.clean
                ),
            }])
            .collect::<Vec<_>>();
    println!("\ntargets");
    for t in &targets {
        println!("  {:<52} {:<7} {}", t.what, if t.met { "met" } else { "MISSED" }, t.detail);
    }
    if targets.iter().any(|t| t.hard && !t.met) {
        return Err("a fault lost requests it should not have, or a worker was not replaced".into());
    }
    if targets.iter().any(|t| !t.met) {
        println!("\n(a timing target missed: on a shared machine, run it again when it is quiet)");
    }
    Ok(())
}
