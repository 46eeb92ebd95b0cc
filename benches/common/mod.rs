//! What the real-server benchmarks share: the run length, a pinned server and a closed loop
//! of users against it.

use servesim::load::{self, BodyTemplate, LoadPlan, Mode, Stop};
use servesim::scenario::Scenario;
use servesim::server::{
    CpuPlan, LaunchOptions, Limits, ServerConfig, ServerProcess, WorkerStats, resolve_model_dir,
};
use servesim::workload::Dist;
use std::path::Path;

/// Requests per configuration: `SERVESIM_BENCH_REQUESTS`, default 4000.
pub fn requests() -> u64 {
    std::env::var("SERVESIM_BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(4000)
}

/// A server for scenario `toml`, pinned to `cpus.server`.
pub fn start(toml: &str, cpus: &CpuPlan) -> ServerProcess {
    let sc = Scenario::parse(toml, Path::new("bench"), Path::new("."), &[]).expect("scenario");
    let config =
        ServerConfig::from_scenario(&sc, Limits::default(), resolve_model_dir(None)).expect("config");
    let opts = LaunchOptions {
        binary: Some(env!("CARGO_BIN_EXE_servesim").into()),
        cpus: Some(cpus.server.clone()),
        ..LaunchOptions::default()
    };
    ServerProcess::start(&config, &opts).expect("server")
}

/// Closed loop of `users` users with no think time sending `n` requests of `body` to
/// `/correct`, the load generator pinned to `cpus.load`; the load report (every request
/// must succeed).
pub fn closed(srv: &ServerProcess, cpus: &CpuPlan, users: u32, n: u64, body: &str) -> load::LoadReport {
    let mode = Mode::Closed { users, think_ms: Dist::Const(0.0) };
    let mut plan = LoadPlan::new(format!("http://{}/correct", srv.addr()), mode, Stop::Requests(n));
    plan.body = Some(BodyTemplate::new(body));
    plan.cpus = Some(cpus.load.clone());
    let r = load::run_blocking(&plan, None).expect("load run");
    assert_eq!(r.errors.values().sum::<u64>(), 0, "every request succeeds");
    r
}

/// The (only) worker's counters.
pub fn one(srv: &ServerProcess) -> WorkerStats {
    srv.stats().expect("/stats").remove(0)
}
