//! External targets, end to end, with servesim's own server as the service: seen only as
//! HTTP, calibrated from outside, validated on points the calibration never measured; and
//! the ways a target can fail, each with its message, with no process left behind.
//!
//! A test binary of its own, so that its timing runs alone, not beside the other tests.

#![cfg(all(feature = "server", feature = "load", feature = "plot"))]

use servesim::experiment::target::{FitOptions, apply, calibrate_target, costs_of};
use servesim::experiment::{
    MeasureOptions, STEAL_LIMIT, SplitSource, ValidateOptions, measure, validate_target,
};
use servesim::scenario::Scenario;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One test at a time: a measurement keeps one service per process, and the timing of the
/// first test must not share the CPUs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What the server is started with (the target scenario never carries these costs): per
/// token 2.5 ms of work under the fair GIL and 1.5 ms without, 4 tokens, 2 cores. The work
/// between hand-offs is long, so the held share, not the hand-offs' cost, sets where the
/// throughput levels off; with short work between frequent hand-offs (models/validate.toml's
/// 0.4 ms per token, 13 hand-offs each) a ramp cannot tell a larger share from dearer
/// hand-offs: a hand-off across cores costs more than one on a single core, which the
/// model's one `handoff_us` does not say.
const SERVED: &str = r#"
[system]
cores = 2
[worker]
handler = "sync"
threads = 8
lock = "fair-gil"
[workload]
new_tokens = 4
[cost]
loop_lock = false
token_locked_ms = 2.5
token_free_ms = 1.5
"#;

/// A target scenario: the server started with [`SERVED`]'s costs, a unique `marker` in its
/// command line. It says only the service's structure.
fn scenario_text(marker: &str, path: &str, dir: &Path) -> String {
    format!(
        r#"
name = "{marker}"
[system]
cores = 2
[worker]
handler = "sync"
threads = 8
lock = "fair-gil"
[workload]
new_tokens = 4
[cost]
release_points = 13
[target]
url = "http://127.0.0.1:{{port}}{path}"
body = '{{"sentence": "the quick brown fox jumps over the lazy dog ", "max_new_tokens": 4}}'
health_url = "http://127.0.0.1:{{port}}/healthz"
cwd = "{repo}"
start = "exec {exe} serve {served} --model {repo}/models/mini-gpt --port {{port}} --cpus {{cpus}} --set worker.handler={{worker.handler}} --set worker.threads={{worker.threads}} --set worker.lock={{worker.lock}} --set name={marker}"
ready_timeout_s = 30
stop_timeout_s = 5
"#,
        repo = repo().display(),
        exe = env!("CARGO_BIN_EXE_servesim"),
        served = write_scenario(dir, "served.toml", SERVED).display(),
    )
}

fn write_scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A test's scratch directory, removed when the test ends, passed or failed.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("servesim-target-test-{name}-")).tempdir().unwrap()
}

/// Processes whose command line holds `marker`.
fn with_marker(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .collect()
}

/// The process group of `pid` (`/proc/PID/stat`'s fifth field), if it runs.
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state, ppid, pgrp.
    stat.rsplit_once(')')?.1.split_whitespace().nth(2)?.parse().ok()
}

fn wait_gone(marker: &str) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if with_marker(marker).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The share of the handler's work [`SERVED`] holds under the lock, as configured: 2.5 ms
/// of 4 ms per token (the Mini-GPT's own 0.3 ms per token aside).
const CONFIGURED_SHARE: f64 = 2.5 / 4.0;

/// How far the blind fit's held share may lie from the server's own (relative): past the
/// +9–49% its known bias has shown, short of where a broken fit lands.
const BLIND_TOLERANCE: f64 = 0.55;

/// The black-box procedure, twice. With the Server-Timing header (the default), the fit
/// takes the held share from the responses and recovers the configured one within 10%.
/// Blind to the header, it sees only throughput and latency: its share is the serialization
/// the ramp shows — the held work plus what each hand-off costs across cores, which the
/// model's single wake-up cost does not split apart — measured +9% to +49% above the
/// header's on a 2-vCPU machine, moving from run to run with the machine's wake-ups. Held
/// here to 55%: a guard against a broken fit (one that lands at 0, at 1 or on a bound), not
/// a measure of that known bias, which the README reports. Either way, the fitted scenario
/// then predicts points the calibration never measured within the targets.
#[test]
fn a_black_box_calibration_recovers_the_lock_share_and_predicts_held_out_points() {
    let _serial = serial();
    let marker = format!("bbfit{}", std::process::id());
    let tmp = scratch("bb");
    let dir = tmp.path();
    let file = write_scenario(dir, "self.toml", &scenario_text(&marker, "/correct", dir));
    let sc = Scenario::load(&file, &[]).unwrap();
    let share = |cal: &servesim::experiment::target::TargetCalibration| {
        cal.params.iter().find(|p| p.name.starts_with("held share")).unwrap().clone()
    };
    let opts =
        FitOptions { budget_s: 15.0, ramp: vec![1, 2, 4, 8], sim_requests: 1500, ..FitOptions::default() };
    let timed = calibrate_target(&sc, &opts, |_, _, _| {}).expect("a calibration");
    assert!(wait_gone(&marker), "the calibration left its service running");
    let h = share(&timed);
    assert_eq!(h.source, "server-timing");
    assert!(
        (h.value - CONFIGURED_SHARE).abs() <= 0.10 * CONFIGURED_SHARE,
        "held share from the responses {:.3}, configured {CONFIGURED_SHARE:.3}: more than 10% apart",
        h.value
    );

    // Blind to the header, the fit reads the share from the ramp alone: throughputs of a few
    // hundred requests per step on a shared machine, so one disturbed step can move it far.
    // A miss is calibrated again once; a fit broken by a change misses both times.
    let blind = FitOptions { use_server_timing: false, budget_s: 20.0, ..opts };
    let blind_fit = || {
        let cal = calibrate_target(&sc, &blind, |_, _, _| {}).expect("a calibration");
        assert!(wait_gone(&marker), "the calibration left its service running");
        let stages = cal.one_client.stages.expect("servesim's server sends Server-Timing");
        let (held, free) = (stages.held.unwrap(), stages.free.unwrap());
        let truth = held / (held + free);
        let h = share(&cal);
        assert_eq!(h.source, "fit", "the header was not to be used");
        eprintln!("blind fit: held share {:.3}, the server's own {truth:.3}", h.value);
        (cal, h, truth)
    };
    let (mut cal, mut h, mut truth) = blind_fit();
    if (h.value - truth).abs() > BLIND_TOLERANCE * truth {
        eprintln!("blind fit more than {:.0}% off; calibrating again once", 100.0 * BLIND_TOLERANCE);
        (cal, h, truth) = blind_fit();
    }
    assert!(
        (h.value - truth).abs() <= BLIND_TOLERANCE * truth,
        "fitted lock-held share {:.3}, the server's own {:.3}: more than {:.0}% apart",
        h.value,
        truth,
        100.0 * BLIND_TOLERANCE
    );

    // The fitted scenario, validated on held-out points: 3, 6 and 12 users (the ramp had
    // 1, 2, 4, 8), sync and async-blocking.
    let fitted = apply(&sc, &costs_of(&cal));
    let mut table = toml::Table::try_from(&fitted).unwrap();
    table.remove("name");
    let cal_file = dir.join("self.calibration.json");
    std::fs::write(&cal_file, serde_json::to_string(&cal).unwrap()).unwrap();
    let fitted_file = write_scenario(dir, "fitted.toml", &toml::to_string(&table).unwrap());
    let axes =
        ["worker.handler=sync,async-blocking".parse().unwrap(), "clients.users=3,6,12".parse().unwrap()];
    let vopts = ValidateOptions {
        measure: MeasureOptions { max_wall_s: 60.0, ..MeasureOptions::default() },
        requests: 300,
        sim_requests: 3000,
        ..ValidateOptions::default()
    };
    // A miss that rests on a point the host stole CPU time from (`validate` measured it
    // again and it was still stolen) is validated again once, and if it still does, reported
    // rather than judged; a miss on points the host left alone fails.
    let validate = || {
        let v = validate_target(&fitted_file, &[], &axes, Some(&cal), &vopts, |_, _, _| {})
            .expect("a validation");
        assert!(wait_gone(&marker), "the validation left its service running");
        assert_eq!(v.points.len(), 6);
        assert!(v.points.iter().all(|p| !p.used_by_fit), "no held-out point was in the ramp");
        let missed: Vec<String> = v
            .targets
            .iter()
            .filter(|t| !t.met)
            .map(|t| format!("target {} missed: {:.1}% > {:.1}%", t.name, t.value_pct, t.limit_pct))
            .collect();
        let stolen = v.points.iter().any(|p| p.host_steal_pct > STEAL_LIMIT * 100.0);
        (missed, stolen, v.table())
    };
    let (mut missed, mut stolen, mut table) = validate();
    if !missed.is_empty() && stolen {
        eprintln!(
            "{}\n{table}\nthe host stole CPU time during some points; validating again once",
            missed.join("\n")
        );
        (missed, stolen, table) = validate();
    }
    if stolen && !missed.is_empty() {
        eprintln!(
            "NOT JUDGED: {}: the host stole over {:.0}% of the CPUs' time during some held-out points, twice\n{table}",
            missed.join("; "),
            STEAL_LIMIT * 100.0
        );
        return;
    }
    assert!(missed.is_empty(), "{}\n{table}", missed.join("\n"));
}

/// [`scenario_text`] with the server's workers set by `system.workers`, at `path` (`/metrics`
/// answers GET without naming its worker).
fn workers_text(marker: &str, path: &str, dir: &Path) -> String {
    let text = scenario_text(marker, path, dir)
        .replace("--set name=", "--set system.workers={system.workers} --set name=");
    if path == "/correct" {
        return text;
    }
    let body = text.lines().find(|l| l.starts_with("body = ")).unwrap().to_owned();
    text.replace(&body, "method = \"GET\"")
}

/// servesim's own server on two workers, seen only as HTTP: the load generator reads which
/// worker answered each user from the `x-worker-pid` header, the measurement counts users
/// per worker process, and validation predicts the point again with that split (and no
/// hash draws: servesim does not know how a target balances). Where no response names its
/// worker, the report says the split is unknown.
#[test]
fn a_targets_users_per_worker_are_read_from_the_worker_pid_header() {
    let _serial = serial();
    let marker = format!("split{}", std::process::id());
    let tmp = scratch("split");
    let dir = tmp.path();
    let file = write_scenario(dir, "split.toml", &workers_text(&marker, "/correct", dir));
    let users = 8;
    let point = |file: &Path| {
        let sets = [
            "system.workers=2".to_owned(),
            format!("clients.users={users}"),
            "run.requests=200".into(),
            "run.warmup_requests=20".into(),
        ];
        Scenario::load(file, &sets.iter().map(|s| s.parse().unwrap()).collect::<Vec<_>>()).unwrap()
    };
    let opts = MeasureOptions { max_wall_s: 60.0, ..MeasureOptions::default() };
    {
        // Stops the service however this block ends.
        let _guard = servesim::experiment::target::ServiceGuard;
        let report = measure(&point(&file), &opts).expect("a measurement");
        // The service's process group: its supervisor's (the process with the marker).
        let group: Vec<u32> = with_marker(&marker).into_iter().filter_map(process_group).collect();
        let counted: Vec<_> = report.workers.iter().filter(|w| w.connections > 0).collect();
        let table = report.table(&point(&file));
        assert_eq!(counted.iter().map(|w| w.connections).sum::<u64>(), users, "{table}");
        assert!((1..=2).contains(&counted.len()), "{table}");
        for w in &counted {
            let in_group = process_group(w.pid).is_some_and(|g| group.contains(&g));
            assert!(in_group, "pid {} is not one of the service's processes\n{table}", w.pid);
            assert!(w.completed > 0 && w.rss_kb > 0, "{table}");
        }
        assert!(report.notes.iter().any(|n| n.starts_with("users per worker, by x-worker-pid")), "{table}");

        // The same service at a route that does not name its worker.
        let blind = write_scenario(dir, "blind.toml", &workers_text(&marker, "/metrics", dir));
        let report = measure(&point(&blind), &opts).expect("a measurement");
        let table = report.table(&point(&blind));
        assert!(report.workers.iter().all(|w| w.connections == 0), "{table}");
        assert!(report.notes.iter().any(|n| n.contains("x-worker-pid") && n.contains("unknown")), "{table}");
    }
    assert!(wait_gone(&marker), "the measurement left its service running");

    let vopts =
        ValidateOptions { measure: opts, requests: 150, sim_requests: 1000, ..ValidateOptions::default() };
    // The costs the server is configured with: the simulator needs some.
    let fixed: Vec<_> = ["system.workers=2", "cost.token_locked_ms=2.5", "cost.token_free_ms=1.5"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let axes = [format!("clients.users={users}").parse().unwrap()];
    let v = validate_target(&file, &fixed, &axes, None, &vopts, |_, _, _| {}).expect("a validation");
    let table = v.table();
    let c = v.points[0].split.as_ref().expect("a split check");
    assert_eq!(c.read_from, SplitSource::Answered, "{table}");
    assert!(c.hash.is_none(), "a target's split is not a hash's draw\n{table}");
    assert_eq!(c.users[0].len(), 2, "{table}");
    assert_eq!(c.users[0].iter().sum::<u32>(), users as u32, "{table}");
    assert!(v.notes.iter().any(|n| n.contains("\"round-robin\"")), "{table}");
    let blind = dir.join("blind.toml");
    let v = validate_target(&blind, &fixed, &axes, None, &vopts, |_, _, _| {}).expect("a validation");
    let table = v.table();
    assert!(v.points[0].split.is_none(), "{table}");
    assert!(v.points[0].split_unknown.as_deref().is_some_and(|w| w.contains("x-worker-pid")), "{table}");
    assert!(v.notes.iter().any(|n| n.contains("unknown at 1 of 1 points")), "{table}");
    assert!(wait_gone(&marker), "the validation left its service running");
}

#[test]
fn a_target_that_cannot_serve_gets_a_message_that_says_why() {
    let _serial = serial();
    let marker = format!("bad{}", std::process::id());
    let tmp = scratch("bad");
    let dir = tmp.path();
    // A route the service does not have: every request fails.
    let file = write_scenario(dir, "bad.toml", &scenario_text(&marker, "/nope", dir));
    let mut sc = Scenario::load(&file, &[]).unwrap();
    sc.run.requests = 20;
    sc.run.warmup_requests = 0;
    let e = {
        let _guard = servesim::experiment::target::ServiceGuard;
        measure(&sc, &MeasureOptions { max_wall_s: 30.0, ..MeasureOptions::default() })
            .unwrap_err()
            .to_string()
    };
    assert!(e.contains("no request succeeded") && e.contains("status_4xx"), "{e}");
    assert!(wait_gone(&marker), "the service was left running");

    // No start, nobody listening.
    let port = servesim::experiment::target::free_port().unwrap();
    let text = format!("[target]\nurl = \"http://127.0.0.1:{port}/x\"\n");
    let sc = Scenario::load(&write_scenario(dir, "down.toml", &text), &[]).unwrap();
    let e = measure(&sc, &MeasureOptions::default()).unwrap_err().to_string();
    assert!(e.contains("unreachable") && e.contains(&format!("127.0.0.1:{port}/health")), "{e}");

    // A start command that never gets ready.
    let slow = format!("{marker}slow");
    let text = format!(
        "[target]\nurl = \"http://127.0.0.1:{{port}}/x\"\nstart = \"echo starting {slow}; exec sh -c 'sleep 300; :' {slow}\"\nready_timeout_s = 1\n"
    );
    let sc = Scenario::load(&write_scenario(dir, "slow.toml", &text), &[]).unwrap();
    let e = measure(&sc, &MeasureOptions::default()).unwrap_err().to_string();
    assert!(e.contains("did not answer 2xx within target.ready_timeout_s = 1 s") && e.contains(&slow), "{e}");
    assert!(wait_gone(&slow), "the service that never got ready was left running");
    // The error names its log, written out for the user to read.
    let log = e.split("its output (").nth(1).and_then(|r| r.split(") ends").next()).expect("a log path");
    assert!(std::fs::read_to_string(log).unwrap().contains(&slow), "{log}");
    std::fs::remove_file(log).unwrap();
}

/// Ctrl-C on `servesim measure` stops the service it started: the whole process group.
#[test]
fn ctrl_c_stops_the_service_servesim_started() {
    let _serial = serial();
    let marker = format!("ctrlc{}", std::process::id());
    let tmp = scratch("ctrlc");
    let dir = tmp.path();
    let file = write_scenario(dir, "c.toml", &scenario_text(&marker, "/correct", dir));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_servesim"))
        .args(["measure"])
        .arg(&file)
        .args(["--set", "run.requests=1000000", "--set", "clients.users=2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while with_marker(&format!("name={marker}")).is_empty() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!with_marker(&format!("name={marker}")).is_empty(), "the service never started");
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(!status.success(), "interrupted, it must not claim success");
    assert!(wait_gone(&format!("name={marker}")), "Ctrl-C left the service running");
    // Nor its log: the file was unlinked once the service started.
    let prefix = format!("servesim-target-{}-", child.id());
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "Ctrl-C left {left:?}");
}

/// A start directory that does not exist is named as such, not as a command that cannot run.
#[test]
fn a_start_directory_that_does_not_exist_is_named() {
    let _serial = serial();
    let tmp = scratch("cwd");
    let text =
        "[target]\nurl = \"http://127.0.0.1:{port}/x\"\nstart = \"exec true\"\ncwd = \"no/such/dir\"\n";
    let sc = Scenario::load(&write_scenario(tmp.path(), "cwd.toml", text), &[]).unwrap();
    let e = measure(&sc, &MeasureOptions::default()).unwrap_err().to_string();
    assert!(e.contains("no/such/dir does not exist") && e.contains("fix target.cwd"), "{e}");
}
