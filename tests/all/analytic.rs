//! The simulator against queueing theory: open single-station queues, processor sharing,
//! a closed network solved by exact MVA, and the coverage of the confidence intervals.

use servesim::analytic::{self, Station, StationKind};
use servesim::scenario::{Override, Scenario};
use servesim::sim::{self, SimReport};
use servesim::stats::student_t_975;
use std::path::Path;

/// Point tests pass within this many standard errors of the analytic value.
const SE_BAND: f64 = 4.0;
/// Little's law holds within this relative residual on every run.
const LITTLE_TOL: f64 = 0.01;

fn run(text: &str, sets: &[String]) -> SimReport {
    let sets: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
    let sc = Scenario::parse(text, Path::new("queue.toml"), Path::new("."), &sets).unwrap();
    let r = sim::simulate(&sc).unwrap();
    assert!(r.figures.little_residual < LITTLE_TOL, "Little's law: {}", r.figures.little_residual);
    r
}

/// One open queue: Poisson arrivals at `rate`, `c` threads on `cores` cores, service `dist`.
fn open_queue(rate: f64, c: u32, cores: u32, dist: &str, requests: u64, reps: u32) -> String {
    format!(
        "[system]\ncores = {cores}\n[worker]\nthreads = {c}\nqueue_limit = 1000000\n\
         [clients]\nkind = \"open\"\nrate_rps = {rate}\n[workload]\nnew_tokens = 0\n\
         [cost]\nrequest_free_ms = {dist}\n\
         [run]\nrequests = {requests}\nwarmup_requests = {}\nreplications = {reps}\nmax_sim_s = 1e12\n",
        requests / 20
    )
}

/// Asserts the simulated mean latency [ms] is within SE_BAND standard errors of `want_s`.
fn assert_mean_latency(r: &SimReport, want_s: f64, what: &str) {
    let se = r.ci95.latency_ms.mean / student_t_975(r.replications as usize - 1);
    let got = r.figures.latency_ms.mean;
    let want = want_s * 1e3;
    assert!(
        (got - want).abs() <= SE_BAND * se,
        "{what}: simulated {got:.2} ± {se:.2} (se) ms, analytic {want:.2} ms"
    );
}

const EXP_1S: &str = "{ dist = \"exponential\", mean = 1000.0 }";

#[test]
fn mm1_at_three_loads() {
    for (rho, requests) in [(0.5, 50_000), (0.8, 200_000), (0.95, 1_000_000)] {
        let r = run(&open_queue(rho, 1, 1, EXP_1S, requests, 10), &[]);
        let want = analytic::mmc(rho, 1.0, 1).unwrap().response_s;
        assert_mean_latency(&r, want, &format!("M/M/1 ρ = {rho}"));
    }
}

#[test]
fn mm4_at_rho_0_9_matches_erlang_c() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mmc.toml");
    let sc = Scenario::load(&path, &["run.replications=10".parse().unwrap()]).unwrap();
    let r = sim::simulate(&sc).unwrap();
    let want = analytic::mmc(3.6, 1.0, 4).unwrap();
    assert!((want.response_s - 2.9694).abs() < 1e-4);
    assert_mean_latency(&r, want.response_s, "M/M/4");
    assert!(r.figures.little_residual < LITTLE_TOL);
}

#[test]
fn md1_matches_pollaczek_khinchine() {
    let r = run(&open_queue(0.8, 1, 1, "1000.0", 200_000, 10), &[]);
    let want = analytic::mg1_response(0.8, 1.0, 0.0).unwrap();
    assert_mean_latency(&r, want, "M/D/1");
}

#[test]
fn processor_sharing_is_insensitive_to_the_service_distribution() {
    // Many threads on one core: M/G/1-PS. Mean response E[S]/(1−ρ) whatever the service
    // distribution; here a log-normal with cv 2.
    let dist = "{ dist = \"lognormal\", mean = 1000.0, cv = 2.0 }";
    let r = run(&open_queue(0.7, 1000, 1, dist, 200_000, 10), &[]);
    let want = analytic::mg1_ps(0.7, 1.0).unwrap();
    assert_mean_latency(&r, want, "M/G/1-PS");
}

#[test]
fn closed_network_matches_exact_mva_for_1_to_64_users() {
    // models/closed-mva.toml: think 1 s; the event loop holding the lock, visited twice
    // with exp 20 ms (one FIFO server, demand 40 ms); a pool of 4 threads, exp 100 ms (a
    // 4-server FIFO station); 8 cores.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/closed-mva.toml");
    let stations = [
        Station { kind: StationKind::Queueing, demand_s: 0.040 },
        Station { kind: StationKind::MultiServer(4), demand_s: 0.100 },
    ];
    let exact = analytic::mva(&stations, 1.0, 64).unwrap();
    for n in 1..=64u32 {
        let sets = [
            format!("clients.users={n}"),
            "run.requests=10000".into(),
            "run.warmup_requests=1000".into(),
            "run.replications=20".into(),
        ];
        let sets: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
        let r = sim::simulate(&Scenario::load(&path, &sets).unwrap()).unwrap();
        let p = &exact[n as usize - 1];
        let t = student_t_975(r.replications as usize - 1);
        let (x, x_se) = (r.figures.throughput_rps, r.ci95.throughput_rps / t);
        assert!(
            (x - p.throughput).abs() <= SE_BAND * x_se,
            "N={n}: X {x:.4} ± {x_se:.4} vs MVA {:.4}",
            p.throughput
        );
        assert_mean_latency(&r, p.response_s, &format!("closed N={n}"));
        assert!(r.figures.little_residual < LITTLE_TOL, "N={n}");
    }
}

#[test]
fn confidence_intervals_cover_the_true_mean_about_95_percent_of_the_time() {
    // 100 independent experiments (seeds 1..=100), each 5 replications of M/M/1 at ρ = 0.5.
    let want_ms = analytic::mmc(0.5, 1.0, 1).unwrap().response_s * 1e3;
    let text = open_queue(0.5, 1, 1, EXP_1S, 20_000, 5);
    let covered = (1..=100)
        .filter(|seed| {
            let r = run(&text, &[format!("run.seed={seed}")]);
            (r.figures.latency_ms.mean - want_ms).abs() <= r.ci95.latency_ms.mean
        })
        .count();
    assert!((90..=99).contains(&covered), "coverage {covered}/100");
}
