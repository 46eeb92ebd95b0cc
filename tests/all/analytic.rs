//! The closed forms checked against one another where theory says they must meet, and the
//! simulator checked against them: open single-station queues, processor sharing, a closed
//! network solved by exact MVA, and the coverage of the confidence intervals.

use servesim::analytic::{self, ClosedNetwork, Station, UslParams};
use servesim::scenario::{Override, Scenario};
use servesim::sim::{self, SimReport};
use servesim::stats::student_t_975;
use std::path::Path;

/// Point tests pass within this many standard errors of the analytic value.
const SE_BAND: f64 = 4.0;
/// Little's law holds within this relative residual on every run.
const LITTLE_TOL: f64 = 0.01;
/// Agreement between two exact closed forms of the same quantity.
const TOL: f64 = 1e-9;

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
         [run]\nrequests = {requests}\nwarmup_requests = {}\nreplications = {reps}\nmax_sim_s = 1e9\n",
        requests / 20
    )
}

/// Asserts the simulated mean latency (ms) is within SE_BAND standard errors of `want_s`.
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
        let want = analytic::mmc(rho, 1.0, 1).unwrap().mean_response_s;
        assert_mean_latency(&r, want, &format!("M/M/1 ρ = {rho}"));
    }
}

#[test]
fn mm4_at_rho_0_9_matches_erlang_c() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mmc.toml");
    let sc = Scenario::load(&path, &["run.replications=10".parse().unwrap()]).unwrap();
    let r = sim::simulate(&sc).unwrap();
    let want = analytic::mmc(3.6, 1.0, 4).unwrap();
    assert!((want.mean_response_s - 2.9694).abs() < 1e-4);
    assert_mean_latency(&r, want.mean_response_s, "M/M/4");
    assert!(r.figures.little_residual < LITTLE_TOL);
}

#[test]
fn md1_matches_pollaczek_khinchine() {
    let r = run(&open_queue(0.8, 1, 1, "1000.0", 200_000, 10), &[]);
    let want = analytic::md1(0.8, 1.0).unwrap().mean_response_s;
    assert_mean_latency(&r, want, "M/D/1");
}

#[test]
fn processor_sharing_is_insensitive_to_the_service_distribution() {
    // Many threads on one core: M/G/1-PS. Mean response E[S]/(1−ρ) whatever the service
    // distribution; here a log-normal with cv 2.
    let dist = "{ dist = \"lognormal\", mean = 1000.0, cv = 2.0 }";
    let r = run(&open_queue(0.7, 1000, 1, dist, 200_000, 10), &[]);
    let want = analytic::mg1_ps(0.7, 1.0).unwrap().mean_response_s;
    assert_mean_latency(&r, want, "M/G/1-PS");
}

#[test]
fn closed_network_matches_exact_mva_for_1_to_64_users() {
    // models/closed-mva.toml: think 1 s; the event loop holding the lock, visited twice
    // with exp 20 ms (one FIFO server, demand 40 ms); a pool of 4 threads, exp 100 ms (a
    // 4-server FIFO station); 8 cores.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/closed-mva.toml");
    let stations = vec![Station::queueing(0.040).unwrap(), Station::multi_server(4, 0.100).unwrap()];
    let exact = analytic::mva(&ClosedNetwork::new(stations, 1.0).unwrap(), 64).unwrap();
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
            (x - p.throughput_per_s).abs() <= SE_BAND * x_se,
            "N={n}: X {x:.4} ± {x_se:.4} vs MVA {:.4}",
            p.throughput_per_s
        );
        assert_mean_latency(&r, p.response_s, &format!("closed N={n}"));
        assert!(r.figures.little_residual < LITTLE_TOL, "N={n}");
    }
}

#[test]
fn confidence_intervals_cover_the_true_mean_about_95_percent_of_the_time() {
    // 100 independent experiments (seeds 1..=100), each 5 replications of M/M/1 at ρ = 0.5.
    let want_ms = analytic::mmc(0.5, 1.0, 1).unwrap().mean_response_s * 1e3;
    let text = open_queue(0.5, 1, 1, EXP_1S, 20_000, 5);
    let covered = (1..=100)
        .filter(|seed| {
            let r = run(&text, &[format!("run.seed={seed}")]);
            (r.figures.latency_ms.mean - want_ms).abs() <= r.ci95.latency_ms.mean
        })
        .count();
    assert!((90..=99).contains(&covered), "coverage {covered}/100");
}

#[test]
fn instability_is_explained_with_the_rate_that_would_be_stable() {
    // λ = 4/s on 3 servers of 0.9 s: ρ = 1.2; at most 3/0.9 = 3.33 requests per second.
    let e = analytic::mmc(4.0, 0.9, 3).unwrap_err().to_string();
    assert_eq!(
        e,
        "utilization ρ = 1.20 ≥ 1: the M/M/c queue is unstable; lower the arrival rate below 3.33/s or add servers"
    );
}

#[test]
fn exponential_service_makes_fifo_ps_and_one_server_erlang_agree() {
    // M/M/1 three ways (Erlang C with c = 1, P–K with C² = 1, PS by insensitivity): one
    // mean response E[S]/(1 − ρ). With ten times the servers it needs, M/M/c barely waits.
    for (lambda, s) in [(0.3, 1.0), (45.0, 0.02), (0.99, 1.0)] {
        let fifo = analytic::mm1(lambda, s).unwrap().mean_response_s;
        let erlang = analytic::mmc(lambda, s, 1).unwrap().mean_response_s;
        let ps = analytic::mg1_ps(lambda, s).unwrap().mean_response_s;
        assert!((fifo - erlang).abs() < TOL * fifo && (fifo - ps).abs() < TOL * fifo, "{fifo} {erlang} {ps}");
    }
    let wide = analytic::mmc(20.0, 1.0, 200).unwrap();
    assert!(wide.p_wait < 1e-100 && (wide.mean_response_s - 1.0).abs() < TOL);
}

#[test]
fn many_users_thinking_long_become_the_open_mmc_queue() {
    // N users thinking Z = N/λ offer nearly Poisson arrivals at rate λ as N grows (the
    // finite-source model tends to M/M/c), so exact MVA of one 4-server station must
    // approach Erlang C, R = 2.9694 s at λ = 3.6/s, E[S] = 1 s, from below and with an
    // error O(1/N): the offered rate (N − Q)/Z falls short of λ by the fraction Q/N.
    let open = analytic::mmc(3.6, 1.0, 4).unwrap().mean_response_s;
    let gap = |n: u32| {
        let net =
            ClosedNetwork::new(vec![Station::multi_server(4, 1.0).unwrap()], f64::from(n) / 3.6).unwrap();
        (open - analytic::mva(&net, n).unwrap()[n as usize - 1].response_s) / open
    };
    let (coarse, fine) = (gap(10_000), gap(analytic::MAX_POPULATION));
    assert!(fine > 0.0 && fine < 3e-3, "relative gap {fine} at N = 100000");
    assert!((8.0..12.0).contains(&(coarse / fine)), "gaps {coarse} at 1e4, {fine} at 1e5: not O(1/N)");
}

#[test]
fn a_balanced_network_without_think_time_is_exactly_a_usl_curve() {
    // K stations of demand D, Z = 0: X(N) = N/((K + N − 1)·D) = λN/(1 + σ(N − 1)) with
    // λ = 1/(K·D), σ = 1/K, κ = 0. Fitting the USL to exact MVA must find exactly that.
    let (k, d) = (4, 0.05);
    let net = ClosedNetwork::new(vec![Station::queueing(d).unwrap(); k], 0.0).unwrap();
    let points: Vec<(f64, f64)> = analytic::mva(&net, 32)
        .unwrap()
        .iter()
        .map(|p| (f64::from(p.population), p.throughput_per_s))
        .collect();
    let fit = analytic::fit_usl(&points).unwrap();
    let want = UslParams::new(5.0, 0.25, 0.0).unwrap();
    assert!((fit.params.lambda - want.lambda).abs() < 1e-8, "{fit:?}");
    assert!((fit.params.sigma - want.sigma).abs() < 1e-8 && fit.params.kappa.abs() < 1e-8, "{fit:?}");
    assert!(fit.params.peak_concurrency().is_infinite() || fit.params.peak_concurrency() > 1e3);
}

#[test]
fn exact_mva_obeys_littles_law_and_its_bounds() {
    let stations = vec![
        Station::queueing(0.010).unwrap(),
        Station::multi_server(8, 0.120).unwrap(),
        Station::multi_server(2, 0.020).unwrap(),
        Station::delay(0.050).unwrap(),
    ];
    let net = ClosedNetwork::new(stations.clone(), 0.25).unwrap();
    let points = analytic::mva(&net, 1000).unwrap();
    for p in &points {
        let n = f64::from(p.population);
        // Little's law over the whole cycle and per station.
        assert!((n - p.throughput_per_s * (p.response_s + 0.25)).abs() < TOL * n, "{p:?}");
        assert!((p.queue_length.iter().sum::<f64>() - p.throughput_per_s * p.response_s).abs() < TOL * n);
        let b = analytic::asymptotic_bounds(&net, p.population).unwrap();
        assert!(b.throughput_lower_per_s <= p.throughput_per_s * (1.0 + TOL));
        assert!(p.throughput_per_s <= b.throughput_upper_per_s * (1.0 + TOL), "{p:?} {b:?}");
        assert!(p.utilization.iter().all(|&u| (0.0..=1.0 + TOL).contains(&u)), "{p:?}");
    }
    // One request alone sees only its demands; a thousand saturate the 8 servers
    // (8/0.12 = 66.7/s, also the open network's saturation rate).
    assert!((points[0].response_s - 0.2).abs() < TOL);
    let open = analytic::open_bounds(&stations);
    assert!((open.max_arrival_rate_per_s - 8.0 / 0.12).abs() < TOL);
    assert!(
        (points[999].throughput_per_s - open.max_arrival_rate_per_s).abs()
            < TOL * open.max_arrival_rate_per_s
    );
    assert_eq!(net.bottleneck(), Some(1));
}
