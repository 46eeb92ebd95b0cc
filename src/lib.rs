//! # servesim
//!
//! Predict how a model-serving HTTP service behaves under load — throughput, latency
//! percentiles, the bottleneck — and check the prediction against a real server.
//!
//! ```text
//!   cli ──► experiment ──► sim ──► des          (predicted)
//!                │   └───► server ─► gpt        (measured)
//!                │   └───► load
//!                └───► plot, stats, analytic, scenario, workload
//! ```
//!
//! * [`scenario`] — the TOML scenario file, parsed into one typed, validated value.
//! * [`des`] — the discrete-event engine: integer-nanosecond clock, event queue, RNG streams.
//! * [`sim`] — the serving system (cores, lock, event loop, threadpool, workers) on [`des`].
//! * [`analytic`] — closed forms the simulator is checked against (Erlang C, MVA, USL…).
//! * [`server_timing`] — the `Server-Timing` header: what servesim reads of any service.
//! * [`stats`] — summaries, percentiles and confidence intervals shared by both backends.
//! * [`experiment`] — the commands (simulate, measure, validate…) as library calls.
//! * [`workload`] — distributions and arrival processes.
//! * [`input`] — the one bounded reader every input file (and standard input) goes through.
//! * [`affinity`] — CPU lists (`0-3,6`) and pinning threads to them (Linux).
//! * `gpt`, `server`, `load`, `plot` — the real model, server, load generator and figures
//!   (behind the default features `model`, `server`, `load` and `plot`).
//!
//! # A walk-through
//!
//! From a scenario in a string to a simulated result, then a sweep over one of its knobs,
//! then a check of the simulator against a closed form. The system is the simplest one
//! with a queue: two pool threads on two cores, no lock, every request 1000 ms of CPU work
//! (exponentially distributed), sent by Poisson arrivals at 1.5 requests per second.
//!
//! ```text
//!   Poisson, λ = 1.5/s ─► FIFO queue ─► pool: 2 threads on 2 cores ─► reply
//!                                       service: exponential, mean 1000 ms
//!   ρ = λ·E[S]/c = 1.5 × 1 s / 2 = 0.75       (an M/M/2 queue)
//! ```
//!
//! ## 1. A scenario, simulated
//!
//! A scenario is TOML in which every field has a default, so it names only what differs.
//! [`Scenario::parse`](scenario::Scenario::parse) reads it, applies `--set`-style
//! overrides, and validates the lot into one typed value: a bad field fails here, with its
//! path. [`sim::simulate`] runs `run.replications` independent replications (in parallel,
//! each deterministic) and reports every figure's mean and the half-width of its 95%
//! confidence interval ([`sim::SimReport`]).
//!
//! ```
//! use servesim::scenario::Scenario;
//! use std::path::Path;
//!
//! /// A stable open system completes what it is offered: throughput within this relative
//! /// error of the arrival rate.
//! const THROUGHPUT_TOL: f64 = 0.05;
//! /// The cores are busy λ·E(S)/c of the time, within this absolute error.
//! const UTILIZATION_TOL: f64 = 0.03;
//!
//! let toml = r#"
//!     [system]
//!     cores = 2
//!     [worker]
//!     threads = 2
//!     lock = "none"
//!     queue_limit = 1000000
//!     [clients]
//!     kind = "open"
//!     rate_rps = 1.5
//!     [workload]
//!     new_tokens = 0
//!     [cost]
//!     request_free_ms = { dist = "exponential", mean = 1000 }
//!     [run]
//!     requests = 5000
//!     replications = 4
//! "#;
//! let sc = Scenario::parse(toml, Path::new("mm2.toml"), Path::new("."), &[])?;
//! let report = servesim::sim::simulate(&sc)?;
//! let f = &report.figures;
//! assert!((f.throughput_rps - 1.5).abs() / 1.5 < THROUGHPUT_TOL, "{}", f.throughput_rps);
//! assert!((f.utilization.cores - 0.75).abs() < UTILIZATION_TOL, "{}", f.utilization.cores);
//! println!("mean latency {:.0} ± {:.0} ms", f.latency_ms.mean, report.ci95.latency_ms.mean);
//!
//! // Deterministic: the same scenario and seed give the same figures, bit for bit.
//! assert_eq!(servesim::sim::simulate(&sc)?.figures, report.figures);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## 2. A sweep
//!
//! A sweep simulates the scenario at every point of a grid of overrides (one
//! [`Axis`](experiment::Axis) per swept path), all points in parallel and with the same
//! seed, so that they differ only by the swept knob (common random numbers).
//! [`SweepPlan`](experiment::SweepPlan) reads the scenario from a file and checks every
//! point before any runs; shards of one sweep (`servesim sweep --shard 3/10`) share a
//! fingerprint of that file and merge into one output.
//!
//! ```
//! use servesim::experiment::grid::{Grid, Shard};
//! use servesim::experiment::{Axis, SweepPlan};
//!
//! /// Throughput within this relative error of each point's arrival rate.
//! const THROUGHPUT_TOL: f64 = 0.05;
//!
//! # let toml = "[system]\ncores = 2\n[worker]\nthreads = 2\nlock = \"none\"\n\
//! #     queue_limit = 1000000\n[clients]\nkind = \"open\"\nrate_rps = 1.5\n\
//! #     [workload]\nnew_tokens = 0\n\
//! #     [cost]\nrequest_free_ms = { dist = \"exponential\", mean = 1000 }\n\
//! #     [run]\nrequests = 5000\nreplications = 4\n";
//! // `toml` is the scenario of step 1.
//! let dir = std::env::temp_dir().join(format!("servesim-tutorial-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let file = dir.join("mm2.toml");
//! std::fs::write(&file, toml)?;
//!
//! let rates: Axis = "clients.rate_rps=0.5,1.0,1.5".parse()?;
//! let plan = SweepPlan::new(&file, &[], Grid::new(vec![rates])?, Shard::default())?;
//! let out = plan.run(&|| {})?;
//! std::fs::remove_dir_all(&dir)?;
//! print!("{}", out.csv());
//!
//! assert_eq!(out.points.len(), 3);
//! for (p, rate) in out.points.iter().zip([0.5, 1.0, 1.5]) {
//!     let x = p.report.figures.throughput_rps;
//!     assert!((x - rate).abs() / rate < THROUGHPUT_TOL, "{:?}: {x}", p.params);
//! }
//! // Queueing: the mean latency grows with the load.
//! let means: Vec<f64> = out.points.iter().map(|p| p.report.figures.latency_ms.mean).collect();
//! assert!(means.windows(2).all(|w| w[0] < w[1]), "{means:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## 3. An analytic cross-check
//!
//! Two threads serving one FIFO queue of Poisson arrivals with exponential work is M/M/2,
//! whose mean response time has a closed form: [`analytic::mmc`] by Erlang C (Kleinrock,
//! vol. 1, §3.5): P(wait) = 9/14 and R = 1 s + P(wait)/(cμ − λ) = 16/7 s ≈ 2286 ms. The
//! simulator has to find it within its own noise, the 95% confidence interval of its mean
//! (with slack for the one run in twenty whose interval misses).
//!
//! ```
//! use servesim::analytic;
//! use servesim::scenario::{Override, Scenario};
//! use std::path::Path;
//!
//! /// Allowed distance between the simulated and the exact mean, in 95% CI half-widths.
//! const CI_WIDTHS: f64 = 2.0;
//! /// Erlang C in closed form against the value worked out by hand (ms).
//! const EXACT_TOL_MS: f64 = 1e-9;
//!
//! let exact = analytic::mmc(1.5, 1.0, 2)?;
//! let exact_ms = exact.mean_response_s * 1e3;
//! assert!((exact.p_wait - 9.0 / 14.0).abs() < 1e-12);
//! assert!((exact_ms - 16e3 / 7.0).abs() < EXACT_TOL_MS);
//!
//! # let toml = "[system]\ncores = 2\n[worker]\nthreads = 2\nlock = \"none\"\n\
//! #     queue_limit = 1000000\n[clients]\nkind = \"open\"\nrate_rps = 1.5\n\
//! #     [workload]\nnew_tokens = 0\n\
//! #     [cost]\nrequest_free_ms = { dist = \"exponential\", mean = 1000 }\n\
//! #     [run]\nrequests = 5000\nreplications = 4\n";
//! // The scenario of step 1, run longer: longer and more replications narrow the interval.
//! let longer: Vec<Override> = vec!["run.requests=40000".parse()?, "run.replications=8".parse()?];
//! let sc = Scenario::parse(toml, Path::new("mm2.toml"), Path::new("."), &longer)?;
//! let r = servesim::sim::simulate(&sc)?;
//! let (mean_ms, ci_ms) = (r.figures.latency_ms.mean, r.ci95.latency_ms.mean);
//! assert!(
//!     (mean_ms - exact_ms).abs() <= CI_WIDTHS * ci_ms,
//!     "simulated {mean_ms:.0} ± {ci_ms:.0} ms, Erlang C {exact_ms:.0} ms"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same holds for M/D/1 and M/G/1 ([`analytic::md1`], [`analytic::mg1`]), processor
//! sharing ([`analytic::mg1_ps`]) and closed networks of users ([`analytic::mva`]): the
//! integration tests check each against the simulator.

pub mod affinity;
pub mod analytic;
pub mod des;
pub mod experiment;
pub mod input;
pub mod scenario;
pub mod server_timing;
pub mod sim;
pub mod stats;
pub mod workload;

#[cfg(feature = "model")]
pub mod gpt;
#[cfg(feature = "load")]
pub mod load;
#[cfg(feature = "plot")]
pub mod plot;
#[cfg(feature = "server")]
pub mod server;
