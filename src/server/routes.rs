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
//! Every request is marked in progress on its connection (`ConnectInfo<Peer>`, see
//! `peer`) from the moment hyper hands it over to its answer, so that a half-closed
//! client's EOF waits for the answer.

use super::api::ApiError;
use super::app::{self, App};
use super::metrics;
use super::peer::Peer;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::{self as mw, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

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
        .layer(mw::from_fn(in_progress))
        .with_state(app)
}

/// The connection's [`Peer`], when the server provides it.
fn peer(req: &axum::extract::Request) -> Option<Peer> {
    req.extensions().get::<ConnectInfo<Peer>>().map(|c| c.0.clone())
}

/// Marks every request in progress on its connection from the moment hyper hands it over
/// to its answer: a half-closed client's EOF is held back until then.
async fn in_progress(req: axum::extract::Request, next: Next) -> Response {
    let _active = peer(&req).map(|p| p.begin());
    next.run(req).await
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
    let peer = peer(&req);
    // The request keeps its extensions, the body limit's among them.
    let body = <Bytes as axum::extract::FromRequest<()>>::from_request(req, &()).await;
    app::correct(app, arrived, body, peer).await
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
