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
//! * [`stats`] — summaries, percentiles and confidence intervals shared by both backends.
//! * [`experiment`] — the commands (simulate, measure, validate…) as library calls.
//! * [`workload`] — distributions and arrival processes.
//! * [`affinity`] — CPU lists (`0-3,6`) and pinning threads to them (Linux).
//! * `gpt`, `server`, `load`, `plot` — the real model, server, load generator and figures
//!   (behind the default features `model`, `server`, `load` and `plot`).

pub mod affinity;
pub mod analytic;
pub mod des;
pub mod experiment;
pub mod scenario;
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
