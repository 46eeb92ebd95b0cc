//! `servesim serve`.

use anyhow::Context;
use clap::Args;
use servesim::scenario::{Override, Scenario};
use servesim::server::{self, CpuList, Limits, ServeOptions, ServerConfig};
use std::path::{Path, PathBuf};

/// Run the real server: axum on tokio serving the Mini-GPT, with the scenario's knobs.
///
/// `system.workers` processes share the port (SO_REUSEPORT), each with its own copy of the
/// weights, one event-loop thread, `worker.threads` pool threads (`sync`, `async-offload`)
/// and its own `worker.lock`; the processes are pinned to the first `system.cores` CPUs.
/// Routes: POST /correct, GET /healthz, /metrics (Prometheus), /stats (JSON counters).
///
/// When every worker listens, one JSON line goes to stdout — {"event":"ready","addr":…,
/// "workers":[{"pid":…,"rss_kb":…,"admin":…}]} — and another when it stops:
/// SIGTERM or Ctrl-C stops accepting, closes idle connections at once, drains in-flight
/// requests, and exits 0.
///
/// With several workers, /metrics and /stats on the shared port answer for one worker:
/// the one the kernel's SO_REUSEPORT hash picks for that connection. Each worker's own
/// admin address (workers[].admin on the ready line) serves the same routes for that
/// worker alone; the supervisor's admin address (admin on the ready line) serves every
/// worker's /metrics at once, labelled by worker, with its own restarts and watchdog kills.
///
/// A worker that dies is replaced on the same port ({"event":"restarted",…} on stdout); one
/// whose event loop sends no heartbeat for --heartbeat-ms is killed and replaced. A worker
/// that keeps failing to start (5 times in a row, backing off 0.25 s to 2 s) stops the
/// server with an error.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  servesim serve models/seed-sync.toml --port 8000\n  \
    servesim serve --set worker.handler=async-blocking --set worker.lock=gil\n  \
    curl -s localhost:8000/correct -H 'content-type: application/json' \
      -d '{\"sentence\": \"helo wrld\", \"max_new_tokens\": 8}'")]
pub struct ServeArgs {
    /// Scenario file (TOML); without one, every knob has its default.
    file: Option<PathBuf>,

    /// Override any field: --set worker.threads=8 --set worker.lock=gil.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<Override>,

    /// Port on 127.0.0.1 (0: an ephemeral port, reported on the ready line).
    #[arg(long, default_value_t = 8000)]
    port: u16,

    /// CPUs for the server's processes, e.g. 0 or 0-3 (default: the first system.cores).
    #[arg(long, value_name = "LIST")]
    cpus: Option<CpuList>,

    /// The Mini-GPT directory (default: models/mini-gpt).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,

    /// Request timeout from arrival (ms). A request still queued then (for a pool thread,
    /// a batch, or the loop) gets 504 and never runs; a running generation stops at its
    /// next token boundary (before the prefill, then before each token or batched step)
    /// and gets 504 with the tokens it made. Not interrupted: the work between two
    /// boundaries — cost.request_* work, the prompt's prefill, one token or step, the
    /// loop's cost.loop_* work. In async-blocking the handler runs on the loop, so it is
    /// checked at the same token boundaries, but nothing else on that worker moves (nor
    /// times out) until it stops.
    #[arg(long, default_value_t = Limits::default().request_timeout_ms)]
    timeout_ms: f64,

    /// After SIGTERM/SIGINT, how long in-flight requests may take (ms).
    #[arg(long, default_value_t = Limits::default().drain_timeout_ms)]
    drain_ms: f64,

    /// How long a worker's event loop may go without a heartbeat before it is killed and
    /// replaced (ms, 100 to 3600000). The loop beats whenever it is free and, in
    /// async-blocking, at every token; keep it above the longest single piece of work that
    /// holds the loop (cost.loop_*, or cost.request_* in async-blocking).
    #[arg(long, default_value_t = Limits::default().heartbeat_timeout_ms)]
    heartbeat_ms: f64,

    /// Largest request body; larger ones get 413 (bytes).
    #[arg(long, default_value_t = Limits::default().body_limit_bytes)]
    body_limit: usize,

    /// How long a client has to send a complete request head (ms), from when its
    /// connection opened or its previous response was sent; then the connection is closed.
    #[arg(long, default_value_t = Limits::default().header_read_timeout_ms)]
    header_timeout_ms: f64,

    /// How long a client has to send a request's body (ms); then it gets 408.
    #[arg(long, default_value_t = Limits::default().body_read_timeout_ms)]
    body_timeout_ms: f64,

    /// How long a keep-alive connection may stay idle before the server closes it (ms).
    #[arg(long, default_value_t = Limits::default().keep_alive_timeout_ms)]
    keep_alive_ms: f64,

    /// Date arrivals by the x-request-start header (µs since the UNIX epoch, at most 60 s
    /// old), as set by a proxy in front; without it the header is ignored, so that no
    /// client can age its own requests.
    #[arg(long)]
    trust_request_start: bool,

    /// Read the whole server configuration as JSON from stdin (`-`) instead of a scenario.
    #[arg(long, hide = true, value_name = "-", conflicts_with_all = ["file", "set"])]
    config: Option<String>,

    /// Run as one worker process (spec on stdin); started by the supervisor.
    #[arg(long, hide = true)]
    worker: bool,

    /// Stop when the parent process exits.
    #[arg(long, hide = true)]
    die_with_parent: bool,
}

/// Runs `servesim serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.worker {
        let drained = server::worker::main_stdin()?;
        anyhow::ensure!(drained, "requests were still running at the drain deadline");
        return Ok(());
    }
    let config = match &args.config {
        Some(_) => read_config()?,
        None => scenario_config(&args)?,
    };
    let opts = ServeOptions {
        port: args.port,
        cpus: args.cpus.clone(),
        die_with_parent: args.die_with_parent,
        ..Default::default()
    };
    let stopped = server::supervisor::run(config, &opts)?;
    anyhow::ensure!(stopped.clean, "not every worker drained and exited cleanly ({})", stopped.reason);
    Ok(())
}

fn read_config() -> anyhow::Result<ServerConfig> {
    let text = servesim::input::read_stdin_text().context("reading the configuration from stdin")?;
    serde_json::from_str(&text).context("the configuration on stdin is not a server configuration")
}

fn scenario_config(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    let sc = match &args.file {
        Some(f) => super::common::ScenarioArgs { file: f.clone(), set: args.set.clone() }.load(&[])?,
        None => Scenario::parse("", Path::new("defaults"), Path::new("."), &args.set)?,
    };
    let limits = Limits {
        request_timeout_ms: args.timeout_ms,
        drain_timeout_ms: args.drain_ms,
        heartbeat_timeout_ms: args.heartbeat_ms,
        body_limit_bytes: args.body_limit,
        header_read_timeout_ms: args.header_timeout_ms,
        body_read_timeout_ms: args.body_timeout_ms,
        keep_alive_timeout_ms: args.keep_alive_ms,
        trust_request_start: args.trust_request_start,
        ..Limits::default()
    };
    let model_dir = server::resolve_model_dir(args.model.as_deref());
    Ok(ServerConfig::from_scenario(&sc, limits, model_dir)?)
}
