//! The HTTP routes of a worker.
//!
//! | route | answer |
//! |---|---|
//! | `POST /correct` | the Mini-GPT's correction and the request's timing (see [`super::api`]) |
//! | `GET /healthz` | `{"status": "ok", "pid": …, "worker": …}` |
//! | `GET /metrics` | Prometheus text (see [`super::metrics`]) |
//! | `GET /stats` | this worker's cumulative counters as JSON ([`super::WorkerStats`]) |
//! | any other path | 404 with a JSON error |
//! | a known path, another method | 405 with a JSON error and an `Allow` header |
//!
//! The same router serves the shared port and the worker's private admin address (see
//! `worker`): with several workers, a request on the shared port — `/metrics` and
//! `/stats` too — reaches whichever worker the kernel's `SO_REUSEPORT` hash picks for the
//! connection, while a worker's admin address always reaches that worker.
//!
//! Each request carries its connection's `Peer` (`ConnectInfo<Peer>`, see `peer`), put there
//! by `conn`, which also marks the request in progress on it from the moment hyper hands it
//! over until its answer is sent, so that a half-closed client's EOF waits for the answer.
//! `/correct` hands it to the pipeline, which withdraws a waiting request whose client left.

use super::api::{self, ApiError};
use super::app::{self, App};
use super::metrics;
use super::peer::Peer;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;

/// The worker's router.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.limits.body_limit_bytes;
    Router::new()
        .route("/correct", post(correct))
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
        .route("/stats", get(stats))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// The connection's [`Peer`], when the server provides it.
fn peer(req: &axum::extract::Request) -> Option<Peer> {
    req.extensions().get::<ConnectInfo<Peer>>().map(|c| c.0.clone())
}

async fn correct(State(app): State<Arc<App>>, req: axum::extract::Request) -> Response {
    let arrived = app::arrival(req.headers(), app.config.limits.trust_request_start);
    // A declared length over the limit is refused before a byte of the body is read.
    let limit = app.config.limits.body_limit_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > limit as u64) {
        return app::refuse_too_large(&app, arrived, n);
    }
    if let Err(e) = api::json_content_type(req.headers().get(header::CONTENT_TYPE)) {
        return app::refuse(&app, arrived, e);
    }
    let peer = peer(&req);
    // The request keeps its extensions, the body limit's among them.
    let read = <Bytes as axum::extract::FromRequest<()>>::from_request(req, &());
    let within = Duration::from_secs_f64(app.config.limits.body_read_timeout_ms / 1e3);
    match tokio::time::timeout(within, read).await {
        Ok(body) => app::correct(app, arrived, body, peer).await,
        Err(_) => app::refuse_slow_body(&app, arrived),
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let body = serde_json::json!({"status": "ok", "pid": std::process::id(), "worker": app.index});
    app.tag(axum::Json(body).into_response())
}

async fn prometheus(State(app): State<Arc<App>>) -> Response {
    let text = metrics::render(&app.metrics, app.counters.in_flight.get(), app.inference_now(), app.queued());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    // Handlers run on the event-loop thread: its CPU clock is the loop's.
    app.tag(axum::Json(app.stats(app::loop_cpu_ms())).into_response())
}

const ROUTES: &str = "POST /correct, GET /healthz, /metrics or /stats";

async fn not_found(uri: Uri) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route {}; try {ROUTES}", uri.path())).into_response()
}

/// A known path with the wrong method; axum adds the `Allow` header.
async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let allowed = if uri.path() == "/correct" { "POST" } else { "GET" };
    let msg = format!("{method} is not allowed on {}; use {allowed} (routes: {ROUTES})", uri.path());
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, msg).into_response()
}
