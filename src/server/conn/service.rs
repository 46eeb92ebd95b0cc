//! The service hyper calls for each request on a connection: it marks the connection busy
//! until the response is sent, refuses over-long heads with JSON errors, takes one of the
//! worker's request slots (`/healthz` takes none), and runs the router.
//!
//! Every request is marked in progress on its connection's [`Peer`] from the moment hyper
//! hands it over until its response is sent — a wait for a slot included — so that a
//! half-closed client's end of file waits for the answer; the router's handlers reach the
//! `Peer` as `ConnectInfo<Peer>` in the request's extensions.

use super::io::{ConnState, RequestGuard};
use crate::server::api::ApiError;
use crate::server::peer::{Active, Peer};
use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// Longest request target (path and query) answered (bytes); longer ones get a JSON 414.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;
/// Largest request head answered (bytes: the request line and every header field, each
/// counted as name, value and separators); larger ones get a JSON 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The health check, answered without a request slot.
const HEALTH: &str = "/healthz";

/// One connection's service.
#[derive(Clone)]
pub(crate) struct ConnService {
    pub(crate) router: Router,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) state: Arc<ConnState>,
    pub(crate) peer: Peer,
}

/// A response body that holds its request (and its slot, and its place on the [`Peer`])
/// until hyper drops it.
pub(crate) struct Held {
    body: Body,
    _request: RequestGuard,
    _slot: Option<OwnedSemaphorePermit>,
    _active: Active,
}

impl HttpBody for Held {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Held>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Held>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut req: Request<Incoming>) -> Answer {
        let request = RequestGuard::enter(&self.state);
        // Marked before anything can wait, so the client's FIN is judged against it.
        let active = self.peer.begin();
        req.extensions_mut().insert(ConnectInfo(self.peer.clone()));
        let (router, slots) = (self.router.clone(), Arc::clone(&self.slots));
        Box::pin(async move {
            if let Some(e) = over_long(&req) {
                let mut resp = e.into_response();
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                return Ok(resp.map(|body| Held { body, _request: request, _slot: None, _active: active }));
            }
            let slot = match req.uri().path() {
                HEALTH => None,
                _ => Some(slots.acquire_owned().await.expect("the slots are never closed")),
            };
            let resp = router.oneshot(req.map(Body::new)).await?;
            Ok(resp.map(|body| Held { body, _request: request, _slot: slot, _active: active }))
        })
    }
}

/// A JSON 414 or 431 for a request target or head over the limits.
fn over_long<B>(req: &Request<B>) -> Option<ApiError> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_TARGET_BYTES {
        return Some(ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("the request target is {target} bytes; the limit is {MAX_TARGET_BYTES}"),
        ));
    }
    let line = req.method().as_str().len() + target + " HTTP/1.1\r\n".len() + 1;
    let fields: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    let head = line + fields;
    (head > MAX_HEAD_BYTES).then(|| {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request head is {head} bytes; the limit is {MAX_HEAD_BYTES} \
                 (the request line and all header fields)"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, headers: &[(&str, String)]) -> Request<()> {
        let mut r = Request::get(target);
        for (k, v) in headers {
            r = r.header(*k, v.as_str());
        }
        r.body(()).unwrap()
    }

    #[test]
    fn heads_over_the_limits_are_refused_with_their_status() {
        let long_target = format!("/{}", "a".repeat(MAX_TARGET_BYTES));
        let big = "b".repeat(MAX_HEAD_BYTES);
        let cases = [
            (request("/healthz", &[("host", "x".into())]), None),
            (request(&long_target, &[]), Some(StatusCode::URI_TOO_LONG)),
            (request("/healthz", &[("x-big", big)]), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)),
        ];
        for (req, status) in cases {
            assert_eq!(over_long(&req).map(|e| e.status), status, "{}", req.uri());
        }
    }
}
