//! `servesim load`.

use anyhow::Context;
use clap::{ArgGroup, Args};
use servesim::affinity::CpuList;
use servesim::load::{self, BodyTemplate, LoadPlan, Method, Mode, Stop};
use servesim::workload::Dist;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// Drive any HTTP/1.1 server with a closed loop, an open loop or a burst, and measure it.
///
/// Latency is measured from each request's intended send time: in the open loop send times
/// are fixed in advance, so a stalled server shows in the latency of every request that
/// should have gone meanwhile (no coordinated omission). Service time, from the actual
/// send, is reported apart. Failed requests are counted by kind (connect, timeout,
/// status_4xx, status_5xx, io…) and never stop the run.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["closed", "open", "burst"])))]
#[command(group(ArgGroup::new("stop").args(["duration", "requests"])))]
#[command(after_help = "Examples:\n  \
    servesim load --url http://127.0.0.1:8000/correct --closed 8 --duration 10 --warmup 2\n  \
    servesim load --url http://127.0.0.1:8000/correct --open 50 --poisson --duration 30 --json | jq .latency_ms\n  \
    servesim load --url http://127.0.0.1:8000/correct --burst 64 --csv burst.csv\n  \
    servesim load --url http://127.0.0.1:8000/correct --closed 4 --requests 200 \\\n    \
    --body '{\"sentence\": \"request {i}\", \"max_new_tokens\": 20}' --cpus 1")]
pub struct LoadArgs {
    /// Target, http://HOST[:PORT][/PATH].
    #[arg(long)]
    url: String,

    /// HTTP method.
    #[arg(long, default_value = "POST")]
    method: String,

    /// JSON body; {i} becomes the request number. By default, the servesim server's
    /// /correct request (none with GET or HEAD).
    #[arg(long, value_name = "TEMPLATE")]
    body: Option<String>,

    /// Closed loop: this many users, each waiting for its reply before sending again.
    #[arg(long, value_name = "USERS")]
    closed: Option<u32>,

    /// Closed loop: think time between a reply and the next request (ms).
    #[arg(long, value_name = "MS", requires = "closed", default_value_t = 0.0)]
    think_ms: f64,

    /// Open loop: send at this rate (requests/s), whatever the replies.
    #[arg(long, value_name = "RATE")]
    open: Option<f64>,

    /// Open loop: exponential gaps (Poisson arrivals) instead of equal gaps.
    #[arg(long, requires = "open")]
    poisson: bool,

    /// Burst: N requests at once, on N connections.
    #[arg(long, value_name = "N")]
    burst: Option<u32>,

    /// Send for this long after the warm-up (s).
    #[arg(long, value_name = "S", value_parser = seconds)]
    duration: Option<Duration>,

    /// Send exactly this many requests, warm-up included.
    #[arg(long, value_name = "N")]
    requests: Option<u64>,

    /// Leave requests completing in the first S seconds out of the statistics (s).
    #[arg(long, value_name = "S", value_parser = seconds, default_value = "0")]
    warmup: Duration,

    /// Per-request timeout (s).
    #[arg(long, value_name = "S", value_parser = seconds, default_value = "30")]
    timeout: Duration,

    /// After --duration, wait at most this long for requests in flight, then cancel them
    /// (s). By default, the timeout.
    #[arg(long, value_name = "S", value_parser = seconds)]
    drain: Option<Duration>,

    /// Open loop: most connections at once; a request that finds none free waits (and is
    /// late).
    #[arg(long, value_name = "N", default_value_t = 512)]
    max_connections: u32,

    /// Worker threads of the load generator.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,

    /// Pin the load generator to these CPUs, e.g. 2,3 or 2-3 (Linux).
    #[arg(long, value_name = "LIST")]
    cpus: Option<CpuList>,

    /// Seed of Poisson gaps.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,

    /// Write one row per request to FILE: intended_us,sent_us,done_us,status,error.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

/// Runs `servesim load`.
pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let plan = plan(&args)?;
    plan.validate()?;
    // Created before the run, so that a path that cannot be written fails before any load
    // is sent rather than after, with the run's records lost.
    let csv = match &args.csv {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("--csv: cannot create {}", path.display()))?,
        ),
        None => None,
    };
    let progress = (!args.json && std::io::stdout().is_terminal()).then(|| load::progress_bar(&plan));
    let report = load::run_blocking(&plan, progress)?;
    if let (Some(path), Some(file)) = (&args.csv, csv) {
        load::write_csv(&report.records, std::io::BufWriter::new(file))
            .with_context(|| format!("--csv: cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table(&plan));
    }
    // The report is out (and the CSV written); a run in which nothing succeeded still fails.
    match report.nothing_succeeded(plan.timeout) {
        Some(why) => anyhow::bail!(why),
        None => Ok(()),
    }
}

/// The typed plan of the flags (checked by [`LoadPlan::validate`]).
fn plan(args: &LoadArgs) -> anyhow::Result<LoadPlan> {
    let mode = match (args.closed, args.open, args.burst) {
        (Some(users), _, _) => Mode::Closed { users, think_ms: Dist::Const(args.think_ms) },
        (_, Some(rate_rps), _) => Mode::Open { rate_rps, poisson: args.poisson },
        (_, _, Some(n)) => Mode::Burst { n },
        _ => anyhow::bail!("give one of --closed USERS, --open RATE or --burst N"),
    };
    let stop = match (args.duration, args.requests, &mode) {
        (Some(d), _, _) => Stop::Duration(d),
        (_, Some(n), _) => Stop::Requests(n),
        (None, None, Mode::Burst { n }) => Stop::Requests(u64::from(*n)),
        _ => anyhow::bail!("--closed and --open need --duration S or --requests N"),
    };
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| anyhow::anyhow!("--method {:?} is not an HTTP method; try POST or GET", args.method))?;
    let body = match &args.body {
        Some(text) => Some(BodyTemplate::new(text)),
        None if method == Method::GET || method == Method::HEAD => None,
        None => Some(BodyTemplate::default()),
    };
    let mut plan = LoadPlan::new(args.url.clone(), mode, stop);
    plan.method = method;
    plan.body = body;
    plan.warmup = args.warmup;
    plan.timeout = args.timeout;
    plan.drain = args.drain;
    plan.max_connections = args.max_connections;
    plan.threads = args.threads;
    plan.cpus = args.cpus.clone();
    plan.seed = args.seed;
    Ok(plan)
}

/// A non-negative number of seconds.
fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("must be a non-negative number of seconds, got {s}"));
    }
    Duration::try_from_secs_f64(v).map_err(|_| format!("{s} seconds is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds() {
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(seconds("0"), Ok(Duration::ZERO));
        for bad in ["-1", "nan", "inf", "x", "1e300"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }
}
