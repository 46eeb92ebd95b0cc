//! The service hyper calls for each request on a connection: it marks the connection busy
//! until the response is sent, takes one of the worker's request slots (`/healthz` takes
//! none), and runs the router.

use super::io::{ConnState, RequestGuard};
use axum::Router;
use axum::body::{Body, HttpBody};
use axum::http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// The health check, answered without a request slot.
const HEALTH: &str = "/healthz";

/// One connection's service.
#[derive(Clone)]
pub(crate) struct ConnService {
    pub(crate) router: Router,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) state: Arc<ConnState>,
}

/// A response body that holds its request (and its slot) until hyper drops it.
pub(crate) struct Held {
    body: Body,
    _request: RequestGuard,
    _slot: Option<OwnedSemaphorePermit>,
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

    fn call(&self, req: Request<Incoming>) -> Answer {
        let request = RequestGuard::enter(&self.state);
        let (router, slots) = (self.router.clone(), Arc::clone(&self.slots));
        Box::pin(async move {
            let slot = match req.uri().path() {
                HEALTH => None,
                _ => Some(slots.acquire_owned().await.expect("the slots are never closed")),
            };
            let resp = router.oneshot(req.map(Body::new)).await?;
            Ok(resp.map(|body| Held { body, _request: request, _slot: slot }))
        })
    }
}
