//! The `servesim` binary: JSON contract, reproducibility, and errors on stderr.

use serde_json::Value;
use std::process::{Command, Output};

/// Runs the `servesim` binary with `args` in the crate's directory.
pub(crate) fn servesim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_servesim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run servesim")
}

/// Runs each of `cases` (arguments, a part of the message wanted) and checks that it is
/// refused: a failing exit that is not a panic, the message on stderr, nothing on stdout.
fn expect_refusals<S: AsRef<str>>(cases: &[(Vec<&str>, S)]) {
    for (args, want) in cases {
        let out = servesim(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && out.status.code() != Some(101), "{args:?}: {:?} {err}", out.status);
        assert!(err.contains(want.as_ref()) && !err.contains("panicked"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    }
}

fn json(args: &[&str]) -> Value {
    let out = servesim(args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    // Exactly one JSON value on stdout.
    let mut values = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    let first = values.next().expect("a JSON value").expect("valid JSON");
    assert!(values.next().is_none(), "more than one JSON value on stdout");
    first
}

const QUICK: [&str; 6] =
    ["--set", "run.requests=3000", "--set", "run.warmup_requests=300", "--replications", "3"];

#[test]
fn simulate_json_has_the_contract_keys() {
    let mut args = vec!["simulate", "models/seed-sync.toml", "--json"];
    args.extend(QUICK);
    let v = json(&args);
    for key in ["throughput_rps", "completed", "events", "sim_wall_s", "events_per_sec"] {
        assert!(v[key].is_number(), "{key} missing in {v}");
    }
    for key in ["mean", "p50", "p95", "p99"] {
        assert!(v["latency_ms"][key].is_number(), "latency_ms.{key}");
        assert!(v["ci95"]["latency_ms"][key].is_number(), "ci95.latency_ms.{key}");
    }
    for key in ["cores", "lock", "threads"] {
        assert!(v["utilization"][key].is_number(), "utilization.{key}");
    }
    assert_eq!(v["completed"], 9000);
    assert_eq!(v["stability"]["bottleneck"], "lock");
}

#[test]
fn same_seed_gives_identical_output_apart_from_timing() {
    let strip = |mut v: Value| {
        let o = v.as_object_mut().unwrap();
        o.remove("sim_wall_s");
        o.remove("events_per_sec");
        v
    };
    let mut args = vec!["simulate", "models/mmc.toml", "--json", "--seed", "42"];
    args.extend(QUICK);
    assert_eq!(strip(json(&args)), strip(json(&args)));
}

#[test]
fn table_is_the_default_output() {
    let mut args = vec!["simulate", "models/seed-async-blocking.toml"];
    args.extend(QUICK);
    let out = servesim(&args);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("throughput") && text.contains("latency p95"), "{text}");
    assert!(text.contains("bottleneck: EventLoop"), "{text}");
}

#[test]
fn bad_input_exits_non_zero_with_a_message_on_stderr() {
    for (args, want) in [
        (vec!["simulate", "models/nope.toml"], "cannot read scenario"),
        (
            vec!["simulate", "models/mmc.toml", "--set", "worker.threads=0"],
            "worker.threads must be ≥ 1, got 0",
        ),
        (vec!["simulate", "models/mmc.toml", "--set", "threads"], "expected PATH=VALUE"),
        (vec!["simulate", "models/mmc.toml", "--replications", "0"], "run.replications must be ≥ 1"),
        (
            vec!["simulate", "models/mmc.toml", "--set", "batching.max_batch=0"],
            "batching.max_batch must be ≥ 1",
        ),
        (vec!["simulate", "models/mmc.toml", "--set", "batching.mode=dynamic"], "unknown variant `dynamic`"),
    ] {
        let out = servesim(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    }
}

#[test]
fn a_run_cut_short_before_any_request_fails_and_says_why() {
    let out = servesim(&["simulate", "models/validate.toml", "--set", "run.max_events=1000"]);
    assert!(!out.status.success(), "an empty result exited 0");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no request was measured") && err.contains("run.max_events"), "{err}");
}

#[test]
fn each_subcommand_s_help_shows_its_long_text() {
    // `servesim X --help` shows the long text of X's arguments; `servesim --help` lists the
    // one-liners only.
    let mut table = vec![
        ("simulate", "Little's-law residual"),
        ("sweep", "common random numbers"),
        ("merge", "shards of different sweeps"),
        ("capacity", "Cantelli's inequality"),
        ("fit-usl", "Where the USL misleads"),
    ];
    if cfg!(feature = "server") {
        table.push(("serve", "SO_REUSEPORT"));
    }
    if cfg!(all(feature = "server", feature = "load")) {
        table.push(("measure", "the load generator the rest"));
    }
    if cfg!(all(feature = "server", feature = "load", feature = "plot")) {
        table.extend([("calibrate", "CPU of a hand-off on a busy core"), ("validate", "OUT/validation.csv")]);
    }
    if cfg!(feature = "load") {
        table.push(("load", "coordinated omission"));
    }
    let top = String::from_utf8(servesim(&["--help"]).stdout).unwrap();
    assert!(top.contains("Fit the Universal Scalability Law to a throughput-vs-concurrency CSV."), "{top}");
    for (command, phrase) in table {
        let out = servesim(&[command, "--help"]);
        assert!(out.status.success(), "{command}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(phrase), "`servesim {command} --help` lacks {phrase:?}:\n{text}");
        assert!(!top.contains(phrase), "`servesim --help` shows the long text of {command}");
    }
}

#[test]
fn capacity_prints_what_each_bound_pruned() {
    // 100 ms of fixed work at 9 req/s, a mean SLO of 300 ms: on one core, or one thread,
    // ρ = 0.9 and the open-queueing bound (the M/D/1 mean, 550 ms) prunes without
    // simulating; two threads on two cores meet it. No cheaper candidate was simulated.
    let dir = crate::scratch("cli-capacity");
    let file = dir.path().join("d100.toml");
    std::fs::write(
        &file,
        "[worker]\nlock = \"none\"\nqueue_limit = 1000000\n[workload]\nnew_tokens = 0\n\
         [cost]\nrequest_free_ms = 100.0\n[run]\nrequests = 4000\nwarmup_requests = 200\nreplications = 3\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let args =
        ["capacity", path, "--target-rps", "9", "--slo", "mean=300ms", "--max-cores", "2", "--headroom", "0"];
    let v = json(&[&args[..], &["--json"]].concat());
    let by_bound = v["pruned_by"]["latency-bound-over-slo"].as_u64().unwrap();
    assert!(by_bound > 0, "{}", v["pruned_by"]);
    assert!(v["cheaper"].is_null(), "{}", v["cheaper"]);
    let out = servesim(&args);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("{by_bound} latency")), "{text}");
    assert!(text.contains("next cheaper simulated: none"), "{text}");
}

/// Inputs that once panicked, ran forever, wrapped the clock or aborted on allocation are
/// refused before the run starts: a non-zero exit that is not a panic's 101, the field and
/// its bound on stderr, nothing on stdout.
#[test]
fn extreme_values_are_refused_before_the_run() {
    let mmc = "models/mmc.toml";
    let sync = "models/seed-sync.toml";
    for (file, sets, want) in [
        (
            mmc,
            &["cost.request_free_ms={dist=\"gamma\",mean=1,cv=1e200}"][..],
            "gamma needs cv in [1e-6, 1e3]",
        ),
        (
            mmc,
            &["cost.request_free_ms={dist=\"gamma\",mean=1,cv=1e-200}"][..],
            "gamma needs cv in [1e-6, 1e3]",
        ),
        (
            mmc,
            &["cost.request_free_ms={dist=\"lognormal\",mean=1,cv=1e200}"][..],
            "lognormal needs cv in [1e-6, 1e3]",
        ),
        (
            mmc,
            &["cost.request_free_ms=1e300"][..],
            "cost.request_free_ms: const needs value ≤ 1e9, got 1e300",
        ),
        (sync, &["clients.think_ms=1e300"][..], "clients.think_ms: const needs value ≤ 1e9"),
        (sync, &["cost.rtt_ms=1e300"][..], "cost.rtt_ms: const needs value ≤ 1e9"),
        (sync, &["cost.handoff_us=1e300"][..], "cost.handoff_us must be a finite number in [0, 1e6]"),
        (
            sync,
            &["worker.switch_interval_ms=1e-300"][..],
            "worker.switch_interval_ms must be a finite number in [0.001, 1e9]",
        ),
        (mmc, &["clients.rate_rps=1e300"][..], "clients.rate_rps must be a finite number in [1e-6, 1e6]"),
        (sync, &["cost.release_points=1000000"][..], "cost.release_points must be ≤ 10000, got 1000000"),
        (
            mmc,
            &["system.workers=1000000", "worker.threads=1000000"][..],
            "system.workers × (worker.threads + 1) must be ≤ 1000000 simulated threads",
        ),
        (
            mmc,
            &["worker.threads=99999999999999999999"][..],
            "worker.threads must be ≤ 1000000, got 99999999999999999999",
        ),
    ] {
        let mut args = vec!["simulate", file];
        for s in sets {
            args.extend(["--set", s]);
        }
        let out = servesim(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && out.status.code() != Some(101), "{args:?}: {:?} {err}", out.status);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    }
}

/// Flags and files that once panicked, allocated without bound or read forever are refused
/// before any work starts: a non-zero exit that is not a panic's 101, the flag or file and
/// the fix on stderr, nothing on stdout.
#[test]
fn flags_and_files_out_of_bounds_are_refused_before_any_work() {
    let dir = crate::scratch("cli-bounds");
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.to_str().unwrap();
    let calibration = dir.path().join("calibration.json");
    let calibration = calibration.to_str().unwrap();
    let slo = ["--slo", "p95=300ms"];
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (
            [
                &["capacity", "models/seed-sync.toml", "--target-rps", "40", "--max-cores", "99999999"][..],
                &slo,
            ]
            .concat(),
            "--max-cores 99999999: must be in 1..=256",
        ),
        (
            [&["capacity", "models/seed-sync.toml", "--target-rps", "1e300"][..], &slo].concat(),
            "more than the 1e6 req/s an open loop may offer",
        ),
        (
            [&["capacity", "models/seed-sync.toml", "--target-rps", "5e-7"][..], &slo].concat(),
            "--target-rps 5e-7: must be at least 1e-6 req/s, the slowest open loop the simulator offers",
        ),
        (vec!["fit-usl", "/dev/zero"], "not a regular file"),
        (vec!["fit-usl", empty], "the file is empty"),
        (vec!["simulate", "/dev/zero"], "longer than the 64 MiB"),
    ];
    if cfg!(all(feature = "server", feature = "load")) {
        cases.push((
            vec!["measure", "models/validate.toml", "--max-wall-s", "1e300"],
            "--max-wall-s must be a number of seconds > 0 and ≤ 86400 (a day), got 1e300",
        ));
        // Its samples were allocated up front: the allocation aborted the process.
        // Checked before the calibration; --repeats 4000000000 aborted allocating 5 TB, and
        // --requests 500000000 held 7 GB of send times before the first request.
        let validate = ["validate", "models/validate.toml", "--sweep", "clients.users=1", "--out", empty];
        for (flag, value, want) in [
            ("--repeats", "4000000000", "--repeats must be between 1 and 1000, got 4000000000"),
            ("--repeats", "0", "--repeats must be between 1 and 1000, got 0"),
            ("--requests", "500000000", "--requests must be between 1 and 1000000 per repeat, got 500000000"),
        ] {
            cases.push(([&validate[..], &["--plots", empty, flag, value]].concat(), want));
        }
        cases.push((
            vec!["calibrate", "models/validate.toml", "--requests", "4294967295", "--out", calibration],
            "--requests must be between 1 and 1000000 (a million single-client requests take hours), got \
             4294967295",
        ));
    }
    expect_refusals(&cases);
}

/// A `--csv` file that cannot be created fails the run before a request is sent, rather than
/// after, with the run's records lost.
#[cfg(feature = "load")]
#[test]
fn load_refuses_an_unwritable_csv_before_sending() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/correct", listener.local_addr().unwrap());
    let dir = crate::scratch("cli-csv");
    let csv = dir.path().join("no/such/dir/requests.csv");
    let args = [
        "load",
        "--url",
        &url,
        "--closed",
        "1",
        "--requests",
        "1",
        "--timeout",
        "1",
        "--csv",
        csv.to_str().unwrap(),
    ];
    let out = servesim(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--csv: cannot create"), "{err}");
    let accepted = listener.accept();
    assert!(
        accepted.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "a request was sent: {accepted:?}"
    );
}

/// Every input file goes through one bounded reader: a file past 64 MiB (a sparse one here,
/// refused from its length before a byte is read) or an endless device is refused with a
/// message naming the file, the flag it came from and the fix, not read until memory runs
/// out or forever.
#[test]
fn input_files_past_the_bound_are_refused_naming_the_file() {
    let dir = crate::scratch("cli-huge");
    let huge = |name: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(&path).unwrap().set_len(servesim::input::MAX_FILE_BYTES + 1).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (toml, csv, json) = (huge("huge.toml"), huge("huge.csv"), huge("huge.json"));
    let shard = huge("shard/sweep.json");
    let (shard_dir, merged) = (dir.path().join("shard"), dir.path().join("out"));
    let (shard_dir, merged) = (shard_dir.to_str().unwrap(), merged.to_str().unwrap());
    let long = "67108865 bytes, longer than the 64 MiB an input file may have";
    let mut cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["simulate", &toml], format!("cannot read scenario {toml}: {long}")),
        (vec!["fit-usl", &csv], format!("{csv}: {long}")),
        (
            vec!["merge", shard_dir, "--out", merged],
            format!(
                "cannot read shard {shard}: {long}; give the sweep.json that `servesim sweep --shard` wrote"
            ),
        ),
    ];
    if cfg!(all(feature = "server", feature = "load")) {
        let fix = "give the measurements.json that `servesim validate` writes beside its report";
        cases.push((vec!["validate", "--from", &json], format!("validate --from {json}: {long}; {fix}")));
        cases.push((
            vec!["validate", "--from", "/dev/zero"],
            format!("validate --from /dev/zero: longer than the 64 MiB an input file may have; {fix}"),
        ));
    }
    expect_refusals(&cases);
    assert!(!dir.path().join("out").exists(), "merge wrote an output");
}

/// A configuration on stdin that never ends is refused after a bounded read.
#[cfg(feature = "server")]
#[test]
fn serve_refuses_an_endless_configuration_on_stdin() {
    let out = Command::new(env!("CARGO_BIN_EXE_servesim"))
        .args(["serve", "--config", "-"])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .expect("run servesim");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.status.code() != Some(101), "{:?} {err}", out.status);
    assert!(
        err.contains("reading the configuration from stdin: longer than the 64 MiB standard input may have"),
        "{err}"
    );
}

/// A field given by --set (or a flag that stands for one) and swept too would be silently
/// replaced at every point; a value swept twice would run one point twice. Both are refused
/// before any work, naming the field or value and what to drop.
#[test]
fn a_set_field_that_is_also_swept_and_a_value_swept_twice_are_refused() {
    let dir = crate::scratch("cli-swept");
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let sweep = |rest: &[&'static str]| [&["sweep", "models/mmc.toml", "--out", out][..], rest].concat();
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (
            sweep(&["--set", "clients.users=4", "--sweep", "clients.users=1,2"]),
            "--set clients.users=4 and --sweep clients.users=… both give clients.users: every point takes \
             the swept value, so the --set would be ignored; drop the --set",
        ),
        (
            sweep(&["--set", "cost.request_free_ms.mean=2", "--sweep", "cost.request_free_ms=1,2"]),
            "--sweep cost.request_free_ms=… both give cost.request_free_ms.mean",
        ),
        (
            sweep(&["--seed", "3", "--sweep", "run.seed=1,2"]),
            "--seed and --sweep run.seed=… both give run.seed: every point takes the swept value, so --seed \
             would be ignored; drop --seed",
        ),
        (sweep(&["-r", "2", "--sweep", "run.replications=1,3"]), "drop --replications"),
        (
            sweep(&["--sweep", "clients.users=1,2,1"]),
            "--sweep clients.users=1,2,1: the value 1 is given twice (values 1 and 3); give each value once",
        ),
    ];
    if cfg!(all(feature = "server", feature = "load")) {
        // Refused before the calibration that would come first.
        cases.push((
            vec![
                "validate",
                "models/validate.toml",
                "--set",
                "clients.users=4",
                "--sweep",
                "clients.users=1,2",
            ],
            "--set clients.users=4 and --sweep clients.users=… both give clients.users",
        ));
        cases.push((
            vec!["validate", "--set", "clients.users=4", "--out", out],
            "--set clients.users=4: the default suite `handlers` sweeps clients.users",
        ));
    }
    expect_refusals(&cases);
    assert!(!dir.path().join("out").exists(), "a refused run wrote its output");
}

/// An output path that cannot take the results — a file where a directory goes, a
/// directory where a file goes — is refused before the run, naming the flag and the path
/// in the way; it used to fail only once the run was over, its results lost.
#[test]
fn unwritable_outputs_are_refused_before_the_run() {
    let dir = crate::scratch("cli-outputs");
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let (file, under) = (file.to_str().unwrap(), dir.path().join("file/out"));
    let (under, folder) = (under.to_str().unwrap(), dir.path().to_str().unwrap());
    let sweep =
        ["sweep", "models/mmc.toml", "--sweep", "clients.users=1,2", "--set", "run.requests=10000000"];
    let in_the_way =
        |flag: &str, what: &str| format!("{flag} {folder}/file: cannot write {folder}/file: {what}");
    let mut cases: Vec<(Vec<&str>, String)> = vec![
        (
            [&sweep[..], &["--out", file]].concat(),
            in_the_way("--out", "a file is in the way; give a directory"),
        ),
        (
            [&sweep[..], &["--out", under]].concat(),
            format!("--out {under}: cannot write {folder}/file: a file is in the way"),
        ),
        (vec!["merge", folder, "--out", file], in_the_way("--out", "a file is in the way")),
    ];
    if cfg!(all(feature = "server", feature = "load")) {
        let validate = ["validate", "models/validate.toml", "--sweep", "clients.users=1"];
        cases.push((
            [&validate[..], &["--out", file]].concat(),
            in_the_way("--out", "a file is in the way; give a directory"),
        ));
        cases.push((
            [&validate[..], &["--out", folder, "--plots", under]].concat(),
            format!("--plots {under}: cannot write {folder}/file: a file is in the way"),
        ));
        cases.push((
            vec!["calibrate", "models/validate.toml", "--out", folder],
            format!("--out {folder}: cannot write {folder}: a directory is in the way; give a file path"),
        ));
        cases.push((
            vec!["calibrate", "--target", "models/target-self.toml", "--scenario-out", under],
            format!("--scenario-out {under}: cannot write {folder}/file: a file is in the way"),
        ));
    }
    expect_refusals(&cases);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a refused run left a file");
}
