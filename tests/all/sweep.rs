//! Sweeps: grids, common random numbers, shards and merge, and refusals that write nothing.

use servesim::experiment::grid::{Axis, Grid, Shard};
use servesim::experiment::{self, SweepPlan};
use servesim::scenario::Override;
use std::path::{Path, PathBuf};

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name)
}

fn quick() -> Vec<Override> {
    ["run.requests=1500", "run.warmup_requests=100", "run.replications=3"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

fn grid(axes: &[&str]) -> Grid {
    Grid::new(axes.iter().map(|a| a.parse::<Axis>().unwrap()).collect()).unwrap()
}

#[test]
fn points_share_random_numbers() {
    // Without a lock the switch interval changes nothing, so with common random numbers the
    // two points are identical, not merely close.
    let g = grid(&["worker.switch_interval_ms=1,50"]);
    let mut sets = quick();
    sets.push("worker.lock=none".parse().unwrap());
    let out =
        SweepPlan::new(&model("seed-sync.toml"), &sets, g, Shard::default()).unwrap().run(&|| {}).unwrap();
    assert_eq!(out.points.len(), 2);
    assert_eq!(out.points[0].report, out.points[1].report);
}

#[test]
fn shards_merge_into_the_whole_sweep() {
    let g = grid(&["clients.users=1,4,16", "worker.threads=1,8"]);
    let file = model("seed-sync.toml");
    let whole = SweepPlan::new(&file, &quick(), g.clone(), Shard::default()).unwrap().run(&|| {}).unwrap();
    let scratch: Vec<tempfile::TempDir> = (0..4)
        .map(|i| {
            let shard = Shard { index: i, count: 4 };
            let out = SweepPlan::new(&file, &quick(), g.clone(), shard).unwrap().run(&|| {}).unwrap();
            let dir = crate::scratch(&format!("sweep-shard{i}"));
            out.write(dir.path()).unwrap();
            dir
        })
        .collect();
    let dirs: Vec<PathBuf> = scratch.iter().map(|d| d.path().to_path_buf()).collect();
    let merged = experiment::merge(&dirs).unwrap();
    assert_eq!(merged.points, whole.points);
    assert_eq!(merged.sweep, whole.sweep);
    // One missing shard, a duplicate, and a shard of another sweep are refused.
    let e = experiment::merge(&dirs[..3]).unwrap_err().to_string();
    assert!(e.contains("shards [3] of 4 are missing"), "{e}");
    let e = experiment::merge(&[dirs[0].clone(), dirs[0].clone()]).unwrap_err().to_string();
    assert!(e.contains("shard 0 is given twice"), "{e}");
    let other = SweepPlan::new(&file, &quick(), grid(&["clients.users=1,2"]), Shard { index: 1, count: 4 })
        .unwrap()
        .run(&|| {})
        .unwrap();
    let odir = crate::scratch("sweep-other");
    other.write(odir.path()).unwrap();
    let e = experiment::merge(&[dirs[0].clone(), odir.path().to_path_buf()]).unwrap_err().to_string();
    assert!(e.contains("merge only shards of one sweep"), "{e}");
}

/// Shard files as `servesim sweep` wrote them, edited by `edit` (a `sweep.json` as JSON);
/// the error of merging them.
fn merge_edited(dirs: &[PathBuf], edit: impl Fn(&mut serde_json::Value)) -> String {
    let scratch = crate::scratch("sweep-edited");
    let edited: Vec<PathBuf> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let mut v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
            if i == 0 {
                edit(&mut v);
            }
            let file = scratch.path().join(format!("shard{i}.json"));
            std::fs::write(&file, v.to_string()).unwrap();
            file
        })
        .collect();
    experiment::merge(&edited).expect_err("must be refused").to_string()
}

#[test]
fn merge_refuses_shards_whose_points_do_not_add_up() {
    let g = grid(&["clients.users=1,2,3,4"]);
    let file = model("seed-sync.toml");
    let scratch: Vec<tempfile::TempDir> = (0..2)
        .map(|i| {
            let out = SweepPlan::new(&file, &quick(), g.clone(), Shard { index: i, count: 2 }).unwrap();
            let dir = crate::scratch(&format!("sweep-check{i}"));
            out.run(&|| {}).unwrap().write(dir.path()).unwrap();
            dir
        })
        .collect();
    let dirs: Vec<PathBuf> = scratch.iter().map(|d| d.path().to_path_buf()).collect();
    assert_eq!(experiment::merge(&dirs).unwrap().points.len(), 4);
    for (edit, want) in [
        (
            (|v: &mut serde_json::Value| {
                v["points"].as_array_mut().unwrap().pop();
            }) as fn(&mut serde_json::Value),
            "holds 1 points, but shard 0/2 of a 4-point sweep has 2",
        ),
        (|v| v["points"][0]["index"] = 1.into(), "holds point 1 where point 0 belongs"),
        (|v| v["points"][0]["index"] = 99_999_999.into(), "holds point 99999999 where point 0 belongs"),
        (|v| v["shard"]["count"] = 0.into(), "shard 0/0 is no shard"),
        (|v| v["shard"]["index"] = 5.into(), "shard 5/2 is no shard"),
        (|v| v["sweep"]["scenario"] = "other".into(), "its sweep (scenario, grid or size) differs"),
        // The plots index points by the grid: a grid larger than the points once panicked.
        (
            |v| v["sweep"]["grid"]["axes"][0]["values"] = serde_json::json!([1, 2, 3, 4, 5]),
            "its grid has 5 points over 1 axes, but its sweep 4",
        ),
        (|v| v["sweep"]["grid"]["axes"] = serde_json::json!([]), "its grid has 1 points over 0 axes"),
        (
            |v| v["points"][1]["params"][0][1] = "7".into(),
            "point 2 has parameters clients.users=7, but the grid gives it clients.users=3",
        ),
    ] {
        let e = merge_edited(&dirs, edit);
        assert!(e.contains(want) && e.contains("run that shard again"), "{e}");
    }
    // A sweep's size is bounded before anything is allocated for it.
    let e = merge_edited(&dirs, |v| v["sweep"]["points"] = 1_000_000_000_000u64.into());
    assert!(e.contains("more than the 10000000 a sweep may have"), "{e}");
    let e = experiment::merge(&[PathBuf::from("/dev/zero")]).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    // More shards than points: the empty ones need not be given, whatever their number.
    let many = Shard { index: 1, count: 1 << 40 };
    let out =
        SweepPlan::new(&file, &quick(), grid(&["clients.users=1,2"]), many).unwrap().run(&|| {}).unwrap();
    let dir = crate::scratch("sweep-many");
    out.write(dir.path()).unwrap();
    let e = experiment::merge(&[dir.path().to_path_buf()]).unwrap_err().to_string();
    assert!(e.contains("shards [0] of 1099511627776 are missing"), "{e}");
}

#[test]
fn csv_has_one_row_per_point_with_ci_columns() {
    let out =
        SweepPlan::new(&model("seed-sync.toml"), &quick(), grid(&["clients.users=1,2,3"]), Shard::default())
            .unwrap()
            .run(&|| {})
            .unwrap();
    let csv = out.csv();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for col in [
        "index",
        "clients.users",
        "throughput_rps",
        "ci95.throughput_rps",
        "latency_ms.p95",
        "ci95.latency_ms.p95",
    ] {
        assert!(header.contains(&col), "{col} missing from {header:?}");
    }
    assert_eq!(lines.count(), 3);
}

#[test]
fn bad_sweeps_are_refused_before_anything_runs() {
    let file = model("seed-sync.toml");
    let e = SweepPlan::new(&file, &quick(), grid(&["worker.thread=1,2"]), Shard::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("point 0 (worker.thread=1)") && e.contains("unknown field `thread`"), "{e}");
    let e = SweepPlan::new(&file, &quick(), grid(&["worker.threads=1,0"]), Shard::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("point 1") && e.contains("worker.threads must be ≥ 1, got 0"), "{e}");
}

#[test]
fn cli_refusals_write_nothing() {
    // A directory that does not exist, inside a scratch one: a refusal must not create it.
    let scratch = crate::scratch("sweep-refused");
    let out_dir = scratch.path().join("out");
    for args in [
        vec!["sweep", "models/seed-sync.toml"],
        vec!["sweep", "models/seed-sync.toml", "--sweep", "worker.nope=1,2"],
        vec!["sweep", "models/seed-sync.toml", "--sweep", "clients.users=1,2", "--shard", "2/2"],
        vec!["merge", "/nonexistent-shard"],
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_servesim"))
            .args(&args)
            .args(["--out", out_dir.to_str().unwrap()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?}");
        assert!(!String::from_utf8_lossy(&o.stderr).is_empty());
        assert!(!out_dir.exists(), "{args:?} wrote {}", out_dir.display());
    }
}

#[test]
fn a_write_that_fails_leaves_the_directory_as_it_was() {
    // One target name is taken by a directory: the CSV (renamed second) or a plot (renamed
    // after the CSV and JSON). Either way nothing new appears, an old sweep.json keeps its
    // content and no temporary is left behind.
    let out =
        SweepPlan::new(&model("seed-sync.toml"), &quick(), grid(&["clients.users=1,2,4"]), Shard::default())
            .unwrap()
            .run(&|| {})
            .unwrap();
    let listing = |dir: &Path| {
        let mut v: Vec<(String, Option<String>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).ok())
            })
            .collect();
        v.sort();
        v
    };
    for blocked in ["sweep.csv", "sweep-p95.png"] {
        let scratch = crate::scratch(&format!("sweep-blocked-{blocked}"));
        let dir = scratch.path();
        std::fs::create_dir_all(dir.join(blocked)).unwrap();
        std::fs::write(dir.join("sweep.json"), "old").unwrap();
        let before = listing(dir);
        let e = out.write(dir).unwrap_err().to_string();
        assert!(e.contains(blocked) && e.contains("directory"), "{e}");
        assert_eq!(listing(dir), before, "{blocked}");
    }
    // And with the way clear, every file appears.
    let scratch = crate::scratch("sweep-clear");
    let dir = scratch.path();
    let written = out.write(dir).unwrap();
    assert!(written.iter().all(|p| p.exists()) && written.len() >= 2, "{written:?}");
    assert!(listing(dir).iter().all(|(name, _)| !name.ends_with(".partial")));
}

#[test]
fn fit_usl_reads_any_csv_and_recovers_parameters() {
    let scratch = crate::scratch("sweep-usl");
    let dir = scratch.path();
    let usl = |n: f64| 5.0 * n / (1.0 + 0.08 * (n - 1.0) + 0.004 * n * (n - 1.0));
    let mut text = String::from("users,throughput\n");
    for n in [1, 2, 4, 8, 16, 32, 48, 64] {
        text.push_str(&format!("{n},{}\n", usl(f64::from(n))));
    }
    std::fs::write(dir.join("t.csv"), &text).unwrap();
    let r = experiment::fit_usl_csv(&dir.join("t.csv"), None, None).unwrap();
    let p = r.fit.params;
    assert!(
        (p.lambda - 5.0).abs() < 1e-6 && (p.sigma - 0.08).abs() < 1e-6 && (p.kappa - 0.004).abs() < 1e-7,
        "{p:?}"
    );
    assert!((r.peak_concurrency - (0.92f64 / 0.004).sqrt()).abs() < 1e-3);
    let e = experiment::fit_usl_csv(&dir.join("t.csv"), Some("threads"), None).unwrap_err().to_string();
    assert!(e.contains("no column threads") && e.contains("users, throughput"), "{e}");
    std::fs::write(dir.join("bad.csv"), "users,throughput\n1,2\n2,x\n").unwrap();
    let e = experiment::fit_usl_csv(&dir.join("bad.csv"), None, None).unwrap_err().to_string();
    assert!(e.contains("line 3") && e.contains("`x`"), "{e}");
}

#[test]
fn fit_usl_refuses_what_is_not_a_csv_file() {
    let scratch = crate::scratch("usl-files");
    let empty = scratch.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    for (file, want) in [
        (empty.as_path(), "the file is empty: give a header row"),
        (Path::new("/dev/zero"), "not a regular file"),
        (scratch.path(), "not a regular file"),
    ] {
        let e = experiment::fit_usl_csv(file, None, None).unwrap_err().to_string();
        assert!(e.contains(want), "{}: {e}", file.display());
    }
}

#[test]
fn fit_usl_refuses_a_csv_of_several_curves() {
    // Two curves (worker.threads = 1 and 8) in one file: refused, naming the column, its
    // values and a filter; one curve alone, its threads column constant, fits.
    let scratch = crate::scratch("sweep-usl-mixed");
    let dir = scratch.path();
    let table = |threads: &[u32]| {
        let mut text = String::from("index,clients.users,worker.threads,throughput_rps\n");
        for (i, (t, n)) in threads.iter().flat_map(|&t| [1u32, 2, 4, 8, 16].map(|n| (t, n))).enumerate() {
            let x = f64::from(n) * 5.0 / (1.0 + 0.1 * f64::from(n - 1) / f64::from(t));
            text.push_str(&format!("{i},{n},{t},{x}\n"));
        }
        text
    };
    let fit = |name: &str, text: String| {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_servesim")).arg("fit-usl").arg(&file).output().unwrap()
    };
    let o = fit("mixed.csv", table(&[1, 8]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && o.stdout.is_empty(), "{err}");
    assert!(err.contains("worker.threads takes the values 1, 8"), "{err}");
    assert!(err.contains("awk -F, 'NR == 1 || ($3 == \"1\")'"), "{err}");
    let o = fit("one.csv", table(&[8]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
