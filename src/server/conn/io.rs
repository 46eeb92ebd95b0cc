//! One connection's socket, watched: when it last did anything, whether it is idle, and the
//! end of file it reports to hyper when an idle connection must close (its keep-alive
//! timeout passed, or the worker is stopping).
//!
//! ```text
//!  hyper ─► Watched (idle: keep-alive timeout, stop) ─► Peered (the client's FIN) ─► TcpStream
//! ```
//!
//! The order matters. [`Watched`] is outside: the end of file it makes up for an idle
//! connection goes straight to hyper, where [`Peer`] would take it for the client's FIN.
//! [`Peered`] is inside: [`Peer`] sees only the socket's own end of file, and holds a
//! half-closed client's back while its request is in progress; [`Watched`] does not end the
//! connection meanwhile either, since a request is held.

use crate::server::peer::Peer;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// A TCP stream read through its connection's [`Peer`], which decides when hyper sees the
/// client's end of file: a half-closed client's request is answered before the connection
/// closes, and a client that leaves while its request waits has the request withdrawn.
pub(crate) struct Peered {
    stream: TcpStream,
    peer: Peer,
}

impl Peered {
    pub(crate) fn new(stream: TcpStream, peer: Peer) -> Self {
        Self { stream, peer }
    }
}

impl AsyncRead for Peered {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let Peered { stream, peer } = self.get_mut();
        peer.poll_read(cx, buf, |cx, buf| Pin::new(stream).poll_read(cx, buf))
    }
}

impl AsyncWrite for Peered {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// What a connection's socket and its requests share.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// Requests the service holds: from the call until the response body is dropped.
    requests: AtomicU32,
    /// The worker is stopping: close as soon as the connection is idle.
    closing: AtomicBool,
    /// The last byte received, response flushed or request finished.
    last_activity: Mutex<Instant>,
}

impl ConnState {
    pub(crate) fn new() -> Self {
        Self {
            requests: AtomicU32::new(0),
            closing: AtomicBool::new(false),
            last_activity: Mutex::new(Instant::now()),
        }
    }

    /// Marks the connection as stopping: once idle, its next read ends the connection.
    pub(crate) fn close_when_idle(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }

    fn last_activity(&self) -> Instant {
        *self.last_activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One request held by the service; dropping it (with the response body) ends it.
#[derive(Debug)]
pub(crate) struct RequestGuard(Arc<ConnState>);

impl RequestGuard {
    pub(crate) fn enter(state: &Arc<ConnState>) -> Self {
        state.requests.fetch_add(1, Ordering::Relaxed);
        RequestGuard(Arc::clone(state))
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A stream that ends itself, as an end of file, when the connection is idle — no
/// request held and every response byte flushed — and either nothing has happened for
/// `keep_alive` or the worker is stopping.
///
/// hyper reads the socket between requests (waiting for the next head), so this is where
/// an idle connection is noticed; it never reports an end of file while a request is held,
/// so in-flight requests are never cut short.
pub(crate) struct Watched {
    stream: Peered,
    state: Arc<ConnState>,
    keep_alive: Duration,
    timer: Pin<Box<Sleep>>,
    /// Bytes written and not yet flushed.
    unflushed: bool,
}

impl Watched {
    pub(crate) fn new(stream: Peered, state: Arc<ConnState>, keep_alive: Duration) -> Self {
        let timer = Box::pin(tokio::time::sleep(keep_alive));
        Self { stream, state, keep_alive, timer, unflushed: false }
    }

    fn idle(&self) -> bool {
        self.state.requests.load(Ordering::Relaxed) == 0 && !self.unflushed
    }

    /// Whether the worker is stopping and the connection is idle: it ends now, before
    /// reading what a slow client may still be trickling in.
    fn stopping(&self) -> bool {
        self.idle() && self.state.closing.load(Ordering::Relaxed)
    }

    /// Whether an idle connection has seen nothing for its keep-alive timeout; if not, the
    /// timer is armed to wake the task when it would have.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.idle() {
            return false;
        }
        let deadline = self.state.last_activity() + self.keep_alive;
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.stopping() {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.unflushed = true;
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) && this.unflushed {
            this.unflushed = false;
            this.state.touch();
        }
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
