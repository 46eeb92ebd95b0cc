//! The supervisor's admin address (`admin` on the ready line): one place to watch the whole
//! server, whichever workers it runs now.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `{"status": "ok", "pid": …}` |
//! | `GET /stats` | the supervisor's counters and the workers listening now ([`SupervisorStats`]) |
//! | `GET /metrics` | Prometheus text: the supervisor's counters, then every worker's own metrics, labelled `worker="<index>"` |
//! | any other path, or another method | 404 or 405 with a JSON error, as a worker's |
//!
//! The supervisor's metrics:
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `servesim_supervisor_worker_restarts_total` | counter | replacement workers started |
//! | `servesim_supervisor_watchdog_kills_total` | counter | workers killed for missing their heartbeat deadline |
//! | `servesim_supervisor_worker_exits_total` | counter | workers that exited without being asked to (watchdog kills included) |
//! | `servesim_supervisor_worker_start_failures_total` | counter | workers that exited before they had served for a second |
//! | `servesim_supervisor_workers_ready` | gauge | workers listening now |
//! | `servesim_supervisor_worker_up{worker}` | gauge | 1 if that worker's `/metrics` answered this scrape |

use super::SupervisorStats;
use crate::server::api::ApiError;
use crate::server::{client, listener};
use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a scrape waits for one worker's `/metrics`.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

type Shared = Arc<Mutex<SupervisorStats>>;

/// The admin server, on its own thread; stopped when dropped.
pub struct Admin {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Admin {
    /// Listens on a private loopback port and serves `stats`.
    pub fn start(stats: Shared) -> std::io::Result<Admin> {
        let std_listener = listener::listen_private()?;
        let addr = std_listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("supervisor-admin".into()).spawn(move || {
            rt.block_on(async move {
                let Ok(l) = tokio::net::TcpListener::from_std(std_listener) else { return };
                let app = Router::new()
                    .route("/healthz", get(healthz))
                    .route("/stats", get(stats_json))
                    .route("/metrics", get(metrics))
                    .fallback(not_found)
                    .method_not_allowed_fallback(method_not_allowed)
                    .with_state(stats);
                let _ = axum::serve(l, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        })?;
        Ok(Admin { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const ROUTES: &str = "GET /healthz, /metrics or /stats";

async fn not_found(uri: Uri) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route {}; try {ROUTES}", uri.path())).into_response()
}

/// A known path with another method than GET; axum adds the `Allow` header.
async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let msg = format!("{method} is not allowed on {}; use GET (routes: {ROUTES})", uri.path());
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, msg).into_response()
}

fn snapshot(shared: &Shared) -> SupervisorStats {
    shared.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok", "pid": std::process::id()})).into_response()
}

async fn stats_json(State(shared): State<Shared>) -> Response {
    axum::Json(snapshot(&shared)).into_response()
}

async fn metrics(State(shared): State<Shared>) -> Response {
    let stats = snapshot(&shared);
    let workers = stats.workers.clone();
    // Every worker at once, each bounded: a hung worker costs one timeout, not one each.
    let scraped = tokio::task::spawn_blocking(move || {
        std::thread::scope(|s| {
            let asks: Vec<_> = workers
                .iter()
                .map(|w| {
                    s.spawn(move || {
                        let r =
                            client::get(w.admin, "/metrics", SCRAPE_TIMEOUT).ok().filter(|r| r.status == 200);
                        (w.index, r.and_then(|r| String::from_utf8(r.body).ok()))
                    })
                })
                .collect();
            asks.into_iter().filter_map(|h| h.join().ok()).collect::<Vec<_>>()
        })
    })
    .await
    .unwrap_or_default();
    let text = render(&stats, &scraped);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The supervisor's families, then every worker's, merged.
fn render(stats: &SupervisorStats, scraped: &[(u32, Option<String>)]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
        out.push('\n');
    };
    let one = |v: u64| [(String::new(), v)];
    family(
        "servesim_supervisor_worker_restarts_total",
        "counter",
        "Replacement workers started, after a worker exited or was killed by the watchdog.",
        &one(stats.restarts),
    );
    family(
        "servesim_supervisor_watchdog_kills_total",
        "counter",
        "Workers killed (SIGKILL) for missing their heartbeat deadline.",
        &one(stats.watchdog_kills),
    );
    family(
        "servesim_supervisor_worker_exits_total",
        "counter",
        "Workers that exited without being asked to, watchdog kills included.",
        &one(stats.exits),
    );
    family(
        "servesim_supervisor_worker_start_failures_total",
        "counter",
        "Workers that exited before they had served for a second.",
        &one(stats.start_failures),
    );
    family(
        "servesim_supervisor_workers_ready",
        "gauge",
        "Workers listening now.",
        &one(stats.workers.len() as u64),
    );
    let up: Vec<(String, u64)> =
        scraped.iter().map(|(i, text)| (format!("{{worker=\"{i}\"}}"), u64::from(text.is_some()))).collect();
    family("servesim_supervisor_worker_up", "gauge", "1 if the worker's /metrics answered this scrape.", &up);
    let texts: Vec<(u32, &str)> = scraped.iter().filter_map(|(i, t)| Some((*i, t.as_deref()?))).collect();
    out + &merge(&texts)
}

/// One metric family across workers.
#[derive(Default)]
struct Family {
    name: String,
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<String>,
}

/// Merges workers' Prometheus texts into one: each family once (its `HELP` and `TYPE`, then
/// every worker's samples together, as the format requires), each sample labelled with its
/// worker's index.
fn merge(texts: &[(u32, &str)]) -> String {
    let mut families: Vec<Family> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut family_of = |name: &str, families: &mut Vec<Family>| {
        *by_name.entry(name.to_owned()).or_insert_with(|| {
            families.push(Family { name: name.to_owned(), ..Family::default() });
            families.len() - 1
        })
    };
    for &(worker, text) in texts {
        let mut current: Option<usize> = None;
        for line in text.lines() {
            let meta = line
                .strip_prefix("# HELP ")
                .map(|r| (r, true))
                .or(line.strip_prefix("# TYPE ").map(|r| (r, false)));
            if let Some((rest, is_help)) = meta {
                let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
                let f = family_of(name, &mut families);
                let slot = if is_help { &mut families[f].help } else { &mut families[f].kind };
                slot.get_or_insert_with(|| value.to_owned());
                current = Some(f);
                continue;
            }
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let name = &line[..line.find(['{', ' ']).unwrap_or(line.len())];
            // A histogram's `_bucket`, `_sum` and `_count` belong to the family declared above.
            let f = match current {
                Some(f) if name.starts_with(families[f].name.as_str()) => f,
                _ => family_of(name, &mut families),
            };
            families[f].samples.push(labelled(line, name.len(), worker));
        }
    }
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        if let Some(help) = &f.help {
            let _ = writeln!(out, "# HELP {} {help}", f.name);
        }
        if let Some(kind) = &f.kind {
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        }
        for s in &f.samples {
            let _ = writeln!(out, "{s}");
        }
        out.push('\n');
    }
    out
}

/// `sample` (whose name ends at `at`) with `worker="<worker>"` first among its labels.
fn labelled(sample: &str, at: usize, worker: u32) -> String {
    let (name, rest) = sample.split_at(at);
    match rest.strip_prefix('{') {
        Some(labels) if labels.starts_with('}') => format!("{name}{{worker=\"{worker}\"{labels}"),
        Some(labels) => format!("{name}{{worker=\"{worker}\",{labels}"),
        None => format!("{name}{{worker=\"{worker}\"}}{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W0: &str = "# HELP reqs Answered.\n# TYPE reqs counter\nreqs{status=\"200\"} 3\n\n\
                      # TYPE lat histogram\nlat_bucket{le=\"1\"} 2\nlat_sum 0.5\nlat_count 2\n\n\
                      # TYPE up gauge\nup 1\n";
    const W1: &str = "# HELP reqs Answered.\n# TYPE reqs counter\nreqs{status=\"200\"} 5\nreqs{status=\"503\"} 1\n\n\
                      # TYPE lat histogram\nlat_bucket{le=\"1\"} 4\nlat_sum 1.5\nlat_count 4\n";

    #[test]
    fn workers_metrics_merge_into_one_family_each_with_a_worker_label() {
        let merged = merge(&[(0, W0), (1, W1)]);
        let want = "# HELP reqs Answered.\n# TYPE reqs counter\nreqs{worker=\"0\",status=\"200\"} 3\n\
                    reqs{worker=\"1\",status=\"200\"} 5\nreqs{worker=\"1\",status=\"503\"} 1\n\n\
                    # TYPE lat histogram\nlat_bucket{worker=\"0\",le=\"1\"} 2\nlat_sum{worker=\"0\"} 0.5\n\
                    lat_count{worker=\"0\"} 2\nlat_bucket{worker=\"1\",le=\"1\"} 4\nlat_sum{worker=\"1\"} 1.5\n\
                    lat_count{worker=\"1\"} 4\n\n# TYPE up gauge\nup{worker=\"0\"} 1\n\n";
        assert_eq!(merged, want);
        assert_eq!(labelled("x{} 1", 1, 2), "x{worker=\"2\"} 1");
    }

    #[test]
    fn the_supervisor_families_come_first_and_a_silent_worker_is_down() {
        let stats = SupervisorStats { restarts: 2, watchdog_kills: 1, ..SupervisorStats::default() };
        let text = render(&stats, &[(0, Some(W0.to_owned())), (1, None)]);
        for line in [
            "servesim_supervisor_worker_restarts_total 2",
            "servesim_supervisor_watchdog_kills_total 1",
            "servesim_supervisor_worker_up{worker=\"0\"} 1",
            "servesim_supervisor_worker_up{worker=\"1\"} 0",
            "reqs{worker=\"0\",status=\"200\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "`{line}` missing:\n{text}");
        }
    }
}
