//! Scenario files: every shipped file loads; bad input is refused with its path and the fix.

use servesim::scenario::{Handler, LockKind, Override, Scenario, ScenarioError};
use std::path::{Path, PathBuf};

fn parse(text: &str, sets: &[&str]) -> Result<Scenario, ScenarioError> {
    let overrides: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
    Scenario::parse(text, Path::new("test.toml"), Path::new("."), &overrides)
}

fn err(text: &str, sets: &[&str]) -> String {
    parse(text, sets).expect_err("must be refused").to_string()
}

fn models() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_scenario_loads() {
    let files = models();
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let sc = Scenario::load(&f, &[]).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(sc.description.is_some(), "{} has no description", f.display());
    }
}

#[test]
fn empty_file_gives_documented_defaults() {
    let sc = parse("", &[]).unwrap();
    assert_eq!(sc, Scenario { base_dir: ".".into(), ..Scenario::defaults() });
    assert_eq!(sc.worker.threads, 40);
    assert_eq!(sc.worker.switch_interval_ms, 5.0);
    assert_eq!(sc.run.replications, 5);
}

#[test]
fn unknown_keys_name_the_key_and_the_valid_ones() {
    let e = err("[worker]\nthread = 4\n", &[]);
    assert!(e.contains("unknown field `thread`"), "{e}");
    assert!(e.contains("`threads`") && e.contains("`handler`"), "{e}");
    let e = err("[wrker]\n", &[]);
    assert!(e.contains("unknown field `wrker`") && e.contains("`worker`"), "{e}");
    let e = err("", &["worker.thred=4"]);
    assert!(e.contains("unknown field `thred`"), "{e}");
}

#[test]
fn bad_values_name_their_path_and_the_fix() {
    for (text, sets, want) in [
        ("[worker]\nthreads = 0\n", &[][..], "worker.threads must be ≥ 1, got 0"),
        ("", &["system.cores=0"][..], "system.cores must be ≥ 1, got 0"),
        (
            "",
            &["worker.switch_interval_ms=-1"][..],
            "worker.switch_interval_ms must be a finite number > 0, got -1",
        ),
        (
            "[clients]\nkind = \"open\"\nrate_rps = 0\n",
            &[][..],
            "clients.rate_rps must be a finite number > 0",
        ),
        ("[clients]\nkind = \"trace\"\n", &[][..], "clients.trace is required"),
        (
            "",
            &["worker.handler=threaded"][..],
            "unknown variant `threaded`, expected one of `sync`, `async-blocking`, `async-offload`",
        ),
        ("", &["worker.threads=\"four\""][..], "worker.threads: invalid type: string \"four\""),
        (
            "",
            &["cost.token_free_ms={dist=\"exponential\",mean=-2}"][..],
            "cost.token_free_ms: exponential needs mean > 0, got -2",
        ),
        ("", &["run.replications=0"][..], "run.replications must be ≥ 1, got 0"),
        ("", &["clients.users=2000000"][..], "clients.users must be ≤ 1000000"),
    ] {
        let e = err(text, sets);
        assert!(e.contains(want), "{text:?} {sets:?}: {e}");
    }
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let e = err("[worker]\nthreads = = 4\n", &[]);
    assert!(e.contains("test.toml is not valid TOML") && e.contains("line 2"), "{e}");
}

#[test]
fn overrides_set_any_field() {
    let sc = parse(
        "[worker]\nthreads = 4\n",
        &[
            "worker.threads=8",
            "worker.lock=gil",
            "worker.handler=async-offload",
            "cost.token_free_ms={dist=\"gamma\",mean=2,cv=0.5}",
        ],
    )
    .unwrap();
    assert_eq!(sc.worker.threads, 8);
    assert_eq!(sc.worker.lock, LockKind::Gil);
    assert_eq!(sc.worker.handler, Handler::AsyncOffload);
    assert_eq!(sc.cost.token_free_ms.mean(), 2.0);
}

#[test]
fn malformed_overrides_say_how_to_write_them() {
    let e = "worker.threads".parse::<Override>().unwrap_err().to_string();
    assert!(e.contains("expected PATH=VALUE"), "{e}");
    let e = "worker..threads=3".parse::<Override>().unwrap_err().to_string();
    assert!(e.contains("dotted keys"), "{e}");
    let e = err("", &["worker.threads=3", "worker.threads.x=1"]);
    assert!(e.contains("`worker.threads` is a value, not a table"), "{e}");
}

#[test]
fn files_are_read_relative_to_the_scenario() {
    let dir = std::env::temp_dir().join(format!("servesim-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("arrivals.csv"), "arrival_ms\n0\n10\n25\n").unwrap();
    std::fs::write(dir.join("service.csv"), "2.0\n4.0\n").unwrap();
    let text = "[clients]\nkind = \"trace\"\ntrace = \"arrivals.csv\"\n\
                [cost]\nrequest_free_ms = { dist = \"empirical\", file = \"service.csv\" }\n";
    std::fs::write(dir.join("s.toml"), text).unwrap();
    let sc = Scenario::load(&dir.join("s.toml"), &[]).unwrap();
    assert_eq!(sc.clients.trace_ms, vec![0.0, 10.0, 25.0]);
    assert_eq!(sc.cost.request_free_ms.mean(), 3.0);
    assert_eq!(sc.name.as_deref(), Some("s"));

    std::fs::write(dir.join("arrivals.csv"), "0\n10\n5\n").unwrap();
    let e = Scenario::load(&dir.join("s.toml"), &[]).unwrap_err().to_string();
    assert!(e.contains("clients.trace") && e.contains("must not decrease"), "{e}");
    std::fs::remove_file(dir.join("service.csv")).unwrap();
    std::fs::write(dir.join("arrivals.csv"), "0\n").unwrap();
    let e = Scenario::load(&dir.join("s.toml"), &[]).unwrap_err().to_string();
    assert!(e.contains("cost.request_free_ms") && e.contains("service.csv"), "{e}");
    let e = Scenario::load(&dir.join("missing.toml"), &[]).unwrap_err().to_string();
    assert!(e.contains("cannot read scenario") && e.contains("missing.toml"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_calibration_adds_measured_costs_to_emulated_ones() {
    use servesim::scenario::{CALIBRATION_FORMAT, Calibration};
    let dir = std::env::temp_dir().join(format!("servesim-cal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cal = Calibration {
        format: CALIBRATION_FORMAT,
        kernels_per_token: 13,
        loop_in_ms: vec![0.02, 0.04],
        loop_out_ms: vec![0.01],
        request_locked_ms: vec![0.1],
        request_free_ms: vec![0.2],
        token_locked_ms: vec![0.003, 0.005],
        token_free_ms: vec![0.01],
        handoff_us: 7.0,
        ..Calibration::default()
    };
    std::fs::write(dir.join("cal.json"), serde_json::to_string(&cal).unwrap()).unwrap();
    let text = "[cost]\ncalibration = \"cal.json\"\ntoken_locked_ms = 0.05\nhandoff_us = 1.0\n";
    std::fs::write(dir.join("s.toml"), text).unwrap();
    let sc = Scenario::load(&dir.join("s.toml"), &[]).unwrap();
    let c = &sc.cost;
    assert!((c.token_locked_ms.mean() - 0.054).abs() < 1e-12, "measured 0.004 + emulated 0.05");
    assert!((c.token_free_ms.mean() - 0.01).abs() < 1e-12);
    assert!((c.loop_in_free_ms.mean() - 0.03).abs() < 1e-12, "the server's loop work takes no lock");
    assert!(c.loop_in_ms.is_zero());
    assert_eq!(c.release_points, 13);
    assert_eq!(c.handoff_us, 8.0);
    assert_eq!(c.calibrated.as_deref(), Some(&cal));

    std::fs::write(dir.join("cal.json"), "{\"format\": 99}").unwrap();
    let e = Scenario::load(&dir.join("s.toml"), &[]).unwrap_err().to_string();
    assert!(e.contains("cost.calibration") && e.contains("cal.json"), "{e}");
    std::fs::remove_file(dir.join("cal.json")).unwrap();
    let e = Scenario::load(&dir.join("s.toml"), &[]).unwrap_err().to_string();
    assert!(e.contains("servesim calibrate"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
