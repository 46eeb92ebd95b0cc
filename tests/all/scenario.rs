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

/// A syntax error in a very long line is shown by line and column, not echoed whole: a
/// 200 kB line of brackets made a 200 kB error message.
#[test]
fn a_syntax_error_in_a_long_line_names_its_place_without_echoing_it() {
    let text = format!("name = \"x\"\na = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = err(&text, &[]);
    assert!(e.len() < 300, "{} bytes: {}", e.len(), &e[..300]);
    assert!(e.starts_with("test.toml is not valid TOML: line 2, column "), "{e}");
    // A short line keeps the parser's excerpt.
    assert!(err("a = [", &[]).contains("a = ["));
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
        ("", &["worker.threads=\"four\""][..], "worker.threads must be a whole number in [1, "),
        ("", &["run.requests=abc"][..], "run.requests must be a whole number in [1, "),
        (
            "",
            &["clients.rate_rps=abc"][..],
            "clients.rate_rps: invalid type: string \"abc\", expected a number",
        ),
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
        // The field is named once, not again on a line of its own.
        assert!(!e.contains("\nin `"), "{text:?} {sets:?}: {e}");
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
    // 30,000 keys once overflowed the stack; the path is refused by its length instead.
    let deep = format!("{}=1", vec!["a"; 30_000].join("."));
    let e = deep.parse::<Override>().unwrap_err().to_string();
    assert!(
        e.contains("30000 keys") && e.contains("no scenario field is deeper"),
        "{}",
        &e[e.len().saturating_sub(200)..]
    );
    let e = err("", &["worker.threads=3", "worker.threads.x=1"]);
    assert!(e.contains("`worker.threads` is a value, not a table"), "{e}");
}

#[test]
fn files_are_read_relative_to_the_scenario() {
    let scratch = crate::scratch("scenario");
    let dir = scratch.path();
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
}

#[test]
fn a_calibration_adds_measured_costs_to_emulated_ones() {
    use servesim::scenario::{CALIBRATION_FORMAT, Calibration};
    let scratch = crate::scratch("cal");
    let dir = scratch.path();
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
        switch_us: 3.0,
        slice_ms: Some(3.5),
        ..Calibration::default()
    };
    std::fs::write(dir.join("cal.json"), serde_json::to_string(&cal).unwrap()).unwrap();
    // The measured time slice applies to time-sliced cores only.
    let sliced = "[system]\nscheduler = \"slice\"\n[cost]\ncalibration = \"cal.json\"\n";
    std::fs::write(dir.join("sliced.toml"), sliced).unwrap();
    assert_eq!(Scenario::load(&dir.join("sliced.toml"), &[]).unwrap().system.slice_ms, 3.5);
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
    assert_eq!(c.switch_us, 3.0, "the measured switch's CPU");
    assert_eq!(sc.system.slice_ms, 4.0, "processor-shared cores keep the default");
    assert_eq!(c.calibrated.as_deref(), Some(&cal));

    std::fs::write(dir.join("cal.json"), "{\"format\": 99}").unwrap();
    let e = Scenario::load(&dir.join("s.toml"), &[]).unwrap_err().to_string();
    assert!(e.contains("cost.calibration") && e.contains("cal.json"), "{e}");
    std::fs::remove_file(dir.join("cal.json")).unwrap();
    let e = Scenario::load(&dir.join("s.toml"), &[]).unwrap_err().to_string();
    assert!(e.contains("servesim calibrate"), "{e}");
}

/// Magnitudes that would overflow the simulator's clock, stall it, or exhaust memory are
/// refused when the scenario loads, naming the field and its bound.
#[test]
fn extreme_values_are_refused_with_their_bound() {
    let open = "clients.kind=\"open\"";
    for (sets, want) in [
        (
            &["cost.request_free_ms={dist=\"gamma\",mean=1,cv=1e200}"][..],
            "cost.request_free_ms: gamma needs cv in [1e-6, 1e3], got 1e200",
        ),
        (
            &["cost.request_free_ms={dist=\"gamma\",mean=1,cv=1e-200}"][..],
            "gamma needs cv in [1e-6, 1e3], got 1e-200",
        ),
        (
            &["cost.request_free_ms={dist=\"lognormal\",mean=1,cv=1e200}"][..],
            "lognormal needs cv in [1e-6, 1e3]",
        ),
        (&["cost.request_free_ms=1e300"][..], "cost.request_free_ms: const needs value ≤ 1e9, got 1e300"),
        (&["clients.think_ms=1e300"][..], "clients.think_ms: const needs value ≤ 1e9, got 1e300"),
        (&["cost.rtt_ms={dist=\"exponential\",mean=1e300}"][..], "cost.rtt_ms: exponential needs mean ≤ 1e9"),
        (&["cost.token_free_ms={dist=\"uniform\",min=0,max=1e10}"][..], "uniform needs max ≤ 1e9, got 1e10"),
        (&["cost.token_free_ms={dist=\"empirical\",samples=[1,nan]}"][..], "empirical needs samples finite"),
        (&["cost.loop_in_ms={dist=\"sum\",of=[9e8,9e8]}"][..], "sum needs mean ≤ 1e9, got 1.8e9"),
        (&["cost.handoff_us=1e300"][..], "cost.handoff_us must be a finite number in [0, 1e6], got 1e300"),
        (
            &["worker.switch_interval_ms=1e-300"][..],
            "worker.switch_interval_ms must be a finite number in [0.001, 1e9], got 1e-300",
        ),
        (
            &[open, "clients.rate_rps=1e300"][..],
            "clients.rate_rps must be a finite number in [1e-6, 1e6], got 1e300",
        ),
        (&[open, "clients.rate_rps=1e-300"][..], "clients.rate_rps must be a finite number in [1e-6, 1e6]"),
        (&["cost.release_points=1000000"][..], "cost.release_points must be ≤ 10000, got 1000000"),
        (
            &["system.workers=1000000", "worker.threads=1000000"][..],
            "system.workers × (worker.threads + 1) must be ≤ 1000000 simulated threads, got 1000000 × \
             (1000000 + 1) = 1000001000000",
        ),
        (
            &["system.workers=1000", "worker.threads=999", "batching.mode=\"static\""][..],
            "system.workers × (worker.threads + 2) must be ≤ 1000000",
        ),
        (
            &["worker.threads=99999999999999999999"][..],
            "worker.threads must be ≤ 1000000, got 99999999999999999999",
        ),
        (&["worker.threads=5000000000"][..], "worker.threads must be ≤ 1000000, got 5000000000"),
        (&["worker.threads=-1"][..], "worker.threads must be ≥ 1, got -1"),
        (&["worker.threads=2.5"][..], "worker.threads must be a whole number in [1, 1000000], got 2.5"),
        (&["run.max_sim_s=1e10"][..], "run.max_sim_s must be ≤ 1e9, got 1e10"),
        (&["run.max_sim_s=inf"][..], "run.max_sim_s must be a finite number > 0, got inf"),
        (
            &["run.requests=999999999", "run.warmup_requests=2"][..],
            "run.requests + run.warmup_requests must be ≤ 1000000000",
        ),
        (&["workload.new_tokens=2e6"][..], "workload.new_tokens must be ≤ 1e6 tokens"),
        (
            &["workload.new_tokens={dist=\"exponential\",mean=5e6}"][..],
            "workload.new_tokens must be ≤ 1e6 tokens, the most a request may generate, got 5e6 \
             (exponential: its largest value, or mean)",
        ),
        (
            &["batching.max_batch=1000", "batching.seq_free_ms=1e7"][..],
            "batching.seq_free_ms is too large: a step of batching.max_batch = 1000 sequences would \
             cost 1e10 ms",
        ),
        (
            &["system.worker_memory_mb=inf"][..],
            "system.worker_memory_mb must be a finite number in [0, 1e9], got inf",
        ),
        (
            &["system.seq_memory_mb=-1"][..],
            "system.seq_memory_mb must be a finite number in [0, 1e9], got -1",
        ),
        (
            &["batching.max_wait_ms=1e12"][..],
            "batching.max_wait_ms must be a finite number in [0, 1e9], got 1e12",
        ),
        (&["workload.prompt_chars=2000000"][..], "workload.prompt_chars must be ≤ 1000000"),
    ] {
        let e = err("", sets);
        assert!(e.contains(want), "{sets:?}: {e}");
    }
}

/// Every limit is inclusive: a scenario at the edge of each loads.
#[test]
fn values_at_the_edges_of_the_limits_load() {
    for sets in [
        &["worker.switch_interval_ms=0.001", "worker.lock=\"gil\""][..],
        &["worker.switch_interval_ms=1e9"][..],
        &["clients.kind=\"open\"", "clients.rate_rps=1e6"][..],
        &["clients.kind=\"open\"", "clients.rate_rps=1e-6"][..],
        &["cost.release_points=10000", "cost.handoff_us=1e6"][..],
        &["system.workers=1000", "worker.threads=999"][..],
        &["system.workers=100", "worker.queue_limit=1000000"][..],
        &["run.max_sim_s=1e9", "run.requests=999999000", "run.warmup_requests=1000"][..],
        &["cost.request_free_ms={dist=\"gamma\",mean=1e9,cv=1e3}"][..],
        &["cost.request_free_ms={dist=\"gamma\",mean=1e9,cv=1e-6}"][..],
        &["cost.request_free_ms={dist=\"lognormal\",mean=1e9,cv=1e3}"][..],
        &["cost.request_free_ms={dist=\"lognormal\",mean=1e-9,cv=1e-6}"][..],
        &[
            "cost.request_free_ms={dist=\"empirical\",samples=[0,1e9]}",
            "clients.think_ms=1e9",
            "cost.rtt_ms=1e9",
        ][..],
        &["workload.new_tokens=1e6"][..],
        &["batching.max_batch=1000", "batching.seq_free_ms=1e6", "batching.step_free_ms=0"][..],
        &["system.worker_memory_mb=1e9", "system.seq_memory_mb=1e9", "workload.prompt_chars=0"][..],
    ] {
        parse("", sets).unwrap_or_else(|e| panic!("{sets:?}: {e}"));
    }
}

#[test]
fn trace_times_and_sample_files_are_bounded() {
    let scratch = crate::scratch("bounds");
    let dir = scratch.path();
    let load = |text: &str| Scenario::parse(text, Path::new("b.toml"), dir, &[]);
    std::fs::write(dir.join("late.csv"), "0\n1\n2e9\n").unwrap();
    let e = load("[clients]\nkind = \"trace\"\ntrace = \"late.csv\"\n").unwrap_err().to_string();
    assert!(e.contains("clients.trace: arrival times must be finite, ≥ 0 and ≤ 1e9 ms, got 2e9"), "{e}");
    std::fs::write(dir.join("nan.csv"), "0\nnan\n").unwrap();
    let e = load("[clients]\nkind = \"trace\"\ntrace = \"nan.csv\"\n").unwrap_err().to_string();
    assert!(e.contains("got NaN"), "{e}");
    std::fs::write(dir.join("huge.csv"), "1\n1e300\n").unwrap();
    let e = load("[cost]\nrequest_free_ms = { dist = \"empirical\", file = \"huge.csv\" }\n").unwrap_err();
    let e = e.to_string();
    assert!(e.contains("cost.request_free_ms") && e.contains("≤ 1e9, got 1e300"), "{e}");
}

#[test]
fn calibrated_batch_steps_are_checked() {
    use servesim::scenario::{BatchStep, CALIBRATION_FORMAT, Calibration};
    let scratch = crate::scratch("cal-bounds");
    let dir = scratch.path();
    let step = |batch, ms: f64| BatchStep { batch, locked_ms: vec![ms], free_ms: vec![ms] };
    let write = |steps: Vec<BatchStep>| {
        let cal = Calibration {
            format: CALIBRATION_FORMAT,
            kernels_per_token: 4,
            loop_in_ms: vec![0.01],
            loop_out_ms: vec![0.01],
            request_locked_ms: vec![0.1],
            request_free_ms: vec![0.1],
            token_locked_ms: vec![0.1],
            token_free_ms: vec![0.1],
            batch_steps: steps,
            ..Calibration::default()
        };
        std::fs::write(dir.join("cal.json"), serde_json::to_string(&cal).unwrap()).unwrap();
        Scenario::parse("[cost]\ncalibration = \"cal.json\"\n", Path::new("c.toml"), dir, &[])
    };
    write(vec![step(1, 1.0), step(4, 2.0)]).unwrap();
    let e = write(vec![step(2, 1.0), step(2, 2.0)]).unwrap_err().to_string();
    assert!(e.contains("cost.calibration: batch size 2 is measured twice"), "{e}");
    let e = write(vec![step(1, 1e12)]).unwrap_err().to_string();
    assert!(e.contains("has a sample 1e12"), "{e}");
    let e = write(vec![step(0, 1.0)]).unwrap_err().to_string();
    assert!(e.contains("batch_steps.batch must be ≥ 1, got 0"), "{e}");
}

#[test]
fn deriving_with_no_override_gives_the_same_scenario() {
    for f in models() {
        let sc = Scenario::load(&f, &[]).unwrap();
        assert_eq!(sc.with(&[]).unwrap(), sc, "{}", f.display());
    }
}

#[test]
fn deriving_applies_overrides_as_loading_with_them_does() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/seed-sync.toml");
    let sets = [
        Override::new("worker.threads", 8),
        Override::new("worker.lock", "fair-gil"),
        Override::new("cost.token_free_ms", toml::Value::try_from(gamma_dist()).unwrap()),
    ];
    let base = Scenario::load(&file, &[]).unwrap();
    let derived = base.with(&sets).unwrap();
    assert_eq!(derived, Scenario::load(&file, &sets).unwrap());
    assert_eq!((derived.worker.threads, derived.worker.lock), (8, LockKind::FairGil));
    assert_ne!(base.worker.threads, 8, "the original is left as it was");
}

/// `{ dist = "gamma", mean = 2.5, cv = 0.5 }`.
fn gamma_dist() -> toml::Table {
    toml::from_str("dist = \"gamma\"\nmean = 2.5\ncv = 0.5").unwrap()
}

#[test]
fn deriving_validates_again_and_names_the_field() {
    let base = parse("", &[]).unwrap();
    let e = base.with(&[Override::new("worker.threads", 0)]).unwrap_err().to_string();
    assert_eq!(e, "worker.threads must be ≥ 1, got 0");
    // A rule between fields: more users than the queue admits.
    let e = base.with(&[Override::new("clients.users", 2000)]).unwrap_err().to_string();
    assert!(e.starts_with("clients.users (2000) exceeds worker.queue_limit (1024)"), "{e}");
    let e = base.with(&[Override::new("worker.thread", 4)]).unwrap_err().to_string();
    assert!(e.starts_with("worker.thread:") && e.contains("threads"), "{e}");
    let e = base.with(&[Override::new("clients.think_ms", -1.0)]).unwrap_err().to_string();
    assert!(e.starts_with("clients.think_ms"), "{e}");
}

#[test]
fn deriving_keeps_the_arrivals_of_a_trace() {
    let base = parse("[clients]\nkind = \"open\"\nrate_rps = 10\n", &[]).unwrap();
    let e = base.with(&[Override::new("clients.kind", "trace")]).unwrap_err().to_string();
    assert!(e.starts_with("clients.trace is required"), "{e}");
    let mut with_times = base.clone();
    with_times.clients.trace_ms = vec![0.0, 5.0, 12.5];
    let t = with_times.with(&[Override::new("clients.kind", "trace")]).unwrap();
    assert_eq!(t.clients.trace_ms, [0.0, 5.0, 12.5]);
    with_times.clients.trace_ms.push(f64::NAN);
    let e = with_times.with(&[Override::new("clients.kind", "trace")]).unwrap_err().to_string();
    assert!(e.starts_with("clients.trace: arrival times must be finite"), "{e}");
}

/// A word in braces that is no placeholder is a typo, refused with the field and what was
/// probably meant; JSON and shell braces stay literal.
#[test]
fn target_placeholders_that_name_nothing_are_refused() {
    let target = |field: &str, value: &str| {
        let mut text = String::from("[target]\n");
        for (default, line) in
            [("url", "url = \"http://127.0.0.1:{port}/x\"\n"), ("start", "start = \"exec true\"\n")]
        {
            if field != default {
                text.push_str(line);
            }
        }
        format!("{text}{field} = '{value}'\n")
    };
    for (field, value, want) in [
        ("url", "http://127.0.0.1:{prt}/x", "target.url: {prt} is not a placeholder"),
        ("url", "http://127.0.0.1:{PORT}/x", "{PORT} is not a placeholder (did you mean {port}?)"),
        (
            "url",
            "http://127.0.0.1:{port}/x?n={i}",
            "{i}, the request's number, is filled in target.body only",
        ),
        (
            "start",
            "serve --threads {threads}",
            "{threads} is not a placeholder (did you mean {worker.threads}?)",
        ),
        ("body", r#"{"sentence": "{nope}"}"#, "target.body: {nope} is not a placeholder"),
        ("body", r#"{"n": {I}}"#, "(did you mean {i}?)"),
        (
            "health_url",
            "http://127.0.0.1:{port}/{health}",
            "target.health_url: {health} is not a placeholder",
        ),
    ] {
        let e = err(&target(field, value), &[]);
        assert!(e.contains(want), "{field} = {value}: {e}");
    }
    // JSON objects, shell syntax and known placeholders load.
    for (field, value) in [
        ("body", r#"{"sentence": "r{i}", "max_new_tokens": {workload.prompt_chars}, "o": {"a": {}}}"#),
        ("start", "exec ${HOME}/serve --port {port} --cpus {cpus} {a,b} && { true; }; echo {}"),
    ] {
        let text = target(field, value);
        assert!(parse(&text, &[]).is_ok(), "{field} = {value}: {}", err(&text, &[]));
    }
}

/// A scenario or calibration file that never ends (a device such as `/dev/zero`) is refused
/// after a bounded read, not read into memory until it runs out.
#[test]
fn endless_files_are_refused_not_read_whole() {
    let e = Scenario::load(Path::new("/dev/zero"), &[]).unwrap_err().to_string();
    assert!(e.contains("/dev/zero") && e.contains("longer than the 64 MiB"), "{e}");
    let e = err("[cost]\ncalibration = \"/dev/zero\"\n", &[]);
    assert!(e.contains("cost.calibration") && e.contains("longer than the 64 MiB"), "{e}");
}
