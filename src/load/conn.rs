//! One HTTP/1.1 keep-alive connection: hyper's client over a tokio `TcpStream`.

use super::ErrorKind;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio::time::{Instant, timeout_at};

/// A request as sent.
pub type OutRequest = Request<Full<Bytes>>;

/// A connection. Dropping it closes the socket, even mid-request.
#[derive(Debug)]
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: AbortHandle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The driver task owns the socket; without this a hung server would keep it alive.
        self.driver.abort();
    }
}

/// A complete response.
#[derive(Debug)]
pub struct Response {
    /// Its status.
    pub status: StatusCode,
    /// Its body, when asked for.
    pub body: Option<Bytes>,
    /// Its `Server-Timing` header, when asked for and sent.
    pub timing: Option<String>,
    /// The pid its [`PID_HEADER`](super::PID_HEADER) names, when sent.
    pub worker_pid: Option<u32>,
}

/// Why an exchange failed, and whether a response head had arrived.
#[derive(Debug)]
pub struct Failure {
    /// The error class.
    pub kind: ErrorKind,
    /// The status, if the head arrived before the failure.
    pub status: Option<StatusCode>,
}

impl Conn {
    /// Opens a connection with `TCP_NODELAY`, giving up at `deadline`.
    pub async fn open(addr: SocketAddr, deadline: Instant) -> Result<Conn, ErrorKind> {
        let stream = match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) | Err(_) => return Err(ErrorKind::Connect),
        };
        // Small requests must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let (sender, conn) = match timeout_at(deadline, http1::handshake(TokioIo::new(stream))).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(_)) | Err(_) => return Err(ErrorKind::Connect),
        };
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        })
        .abort_handle();
        Ok(Conn { sender, driver })
    }

    /// Whether the connection can take a request now (the server may have closed it).
    pub async fn is_usable(&mut self) -> bool {
        !self.sender.is_closed() && self.sender.ready().await.is_ok()
    }

    /// Sends `req` and reads the whole response body (so the connection can be reused),
    /// keeping the body only if `capture`, and the `Server-Timing` header only if `timing`;
    /// the answering worker's pid whenever the response names it.
    pub async fn exchange(
        &mut self,
        req: OutRequest,
        capture: bool,
        timing: bool,
    ) -> Result<Response, Failure> {
        let resp =
            self.sender.send_request(req).await.map_err(|e| Failure { kind: classify(&e), status: None })?;
        let status = resp.status();
        let worker_pid = super::workers::pid_of(resp.headers());
        let server_timing = if timing {
            let all: Vec<&str> =
                resp.headers().get_all("server-timing").iter().filter_map(|v| v.to_str().ok()).collect();
            (!all.is_empty()).then(|| all.join(", "))
        } else {
            None
        };
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure { kind: classify(&e), status: Some(status) })?;
        Ok(Response { status, body: capture.then(|| body.to_bytes()), timing: server_timing, worker_pid })
    }
}

fn classify(e: &hyper::Error) -> ErrorKind {
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        ErrorKind::Protocol
    } else {
        ErrorKind::Io
    }
}
