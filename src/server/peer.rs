//! A client connection as the request pipeline sees it: so that a client that half-closes
//! (`shutdown(SHUT_WR)` after sending its request) still gets its answer, while a client that
//! leaves before its request has started does not have it run.
//!
//! TCP cannot tell a client that closed its socket from one that only finished sending: both
//! send a FIN, and only a write would show which one still reads. So the FIN is judged by
//! when it arrives:
//!
//! | the client's FIN arrives … | its request |
//! |---|---|
//! | with the request: before the request waits, or within [`HALF_CLOSE_GRACE`] of its arrival | is served; the connection closes after the answer |
//! | later, while the request still waits (for a pool thread, the loop's turn or a batch) | is withdrawn: it never runs, and counts as cancelled |
//! | once the request runs | runs to its end (or its timeout); the answer is written |
//! | on an idle connection | closes it |
//!
//! A reset (RST) breaks the connection at once; a request that had not started never runs.
//! A FIN read together with a request that waited unread in its socket (the loop busy in
//! `async-blocking`, or the connection still in the kernel's accept queue) arrives "with the
//! request": that request is served. So is one whose FIN is read while it waits for a
//! request slot (`limits.max_connections`): it has no ticket yet.
//!
//! The worker's connections (`super::conn`) read through [`Peer::poll_read`], which shows
//! hyper the EOF only when the rule says the client has gone, and holds it back while a
//! half-closed client's request is in progress: from hyper handing the request over until
//! its answer is sent. Each request's handler reaches its connection's `Peer` through axum's
//! `ConnectInfo`, which the connection's service puts in the request's extensions.

use super::ticket::Ticket;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::ReadBuf;

/// A FIN this soon after its request's arrival is the client having finished sending, not
/// giving up: a client that shuts down its sending side right after its request may do so a
/// moment after the server has read it, while the request already waits.
pub const HALF_CLOSE_GRACE: Duration = Duration::from_millis(100);

/// One connection's state, shared by its socket and the handler of its current request.
#[derive(Debug, Clone, Default)]
pub struct Peer(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    /// When the request in progress (from hyper handing it over to its answer) began.
    active: Option<Instant>,
    /// The client's FIN has been read.
    eof: bool,
    /// The FIN came with the request, or on an idle connection: answer, then close.
    half_closed: bool,
    /// The EOF was held back once with no request in progress, so that hyper could hand
    /// over a request it had already read.
    deferred: bool,
    /// The ticket of the request in progress while it waits to start.
    waiting: Option<Ticket>,
    /// The connection's task, to wake once its request is answered.
    reader: Option<Waker>,
}

/// A request in progress on its connection, until dropped.
#[derive(Debug)]
pub struct Active(Peer);

/// A request's ticket registered with its connection, until dropped.
#[derive(Debug)]
pub struct Waiting(Peer);

impl Peer {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks a request in progress on this connection until the guard drops.
    pub fn begin(&self) -> Active {
        self.state().active = Some(Instant::now());
        Active(self.clone())
    }

    /// Registers the in-progress request's `ticket` while it waits to start: if the client
    /// leaves meanwhile (a FIN past the grace), the ticket is withdrawn and the connection
    /// closed.
    pub fn waiting(&self, ticket: &Ticket) -> Waiting {
        self.state().waiting = Some(ticket.clone());
        Waiting(self.clone())
    }

    /// Reads from the socket through `read`, applying the rule above to its EOF: the EOF is
    /// returned when the client is judged gone (its waiting request withdrawn) or the
    /// connection is idle; it stays pending while an answer is due.
    pub fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        read: impl FnOnce(&mut Context<'_>, &mut ReadBuf<'_>) -> Poll<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        let mut st = self.state();
        if buf.remaining() == 0 {
            return read(cx, buf);
        }
        if !st.eof {
            let before = buf.filled().len();
            match read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() == before => {
                    st.eof = true;
                    st.half_closed = match st.active {
                        None => true,
                        Some(began) => st.waiting.is_none() || began.elapsed() < HALF_CLOSE_GRACE,
                    };
                }
                other => return other,
            }
        }
        match st.active {
            None if st.deferred => Poll::Ready(Ok(())),
            None => {
                st.deferred = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(_) => {
                if !st.half_closed && st.waiting.as_ref().is_some_and(Ticket::withdraw) {
                    // hyper sees the EOF mid-request and drops the request.
                    return Poll::Ready(Ok(()));
                }
                st.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        let mut st = self.0.state();
        st.active = None;
        st.waiting = None;
        st.deferred = false;
        if let Some(w) = st.reader.take() {
            w.wake();
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.state().waiting = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Reads through `peer` from a socket that has reached its EOF.
    fn read_at_eof(peer: &Peer) -> Poll<io::Result<()>> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut bytes = [0u8; 8];
        let mut buf = ReadBuf::new(&mut bytes);
        peer.poll_read(&mut cx, &mut buf, |_, _| Poll::Ready(Ok(())))
    }

    fn is_eof(p: &Poll<io::Result<()>>) -> bool {
        matches!(p, Poll::Ready(Ok(())))
    }

    #[test]
    fn an_idle_connection_sees_its_eof_after_one_look_for_a_request() {
        let peer = Peer::default();
        assert!(read_at_eof(&peer).is_pending());
        assert!(is_eof(&read_at_eof(&peer)));
    }

    #[test]
    fn a_fin_with_the_request_is_held_back_until_the_answer() {
        let peer = Peer::default();
        // The FIN is read before the handler has seen the request (hyper read both at once).
        assert!(read_at_eof(&peer).is_pending());
        let active = peer.begin();
        let ticket = Ticket::new();
        let waiting = peer.waiting(&ticket);
        assert!(read_at_eof(&peer).is_pending(), "held back while the request waits");
        assert!(ticket.start(), "the half-closed client's request runs");
        drop((waiting, active));
        assert!(read_at_eof(&peer).is_pending(), "one more look for a pipelined request");
        assert!(is_eof(&read_at_eof(&peer)), "closed after the answer");
    }

    #[test]
    fn a_fin_while_the_request_waits_past_the_grace_withdraws_it() {
        let peer = Peer::default();
        let _active = peer.begin();
        let ticket = Ticket::new();
        let _waiting = peer.waiting(&ticket);
        std::thread::sleep(HALF_CLOSE_GRACE + Duration::from_millis(20));
        assert!(is_eof(&read_at_eof(&peer)), "the client left: hyper drops the request");
        assert!(ticket.withdrawn() && !ticket.start());
    }

    #[test]
    fn a_fin_once_the_request_runs_waits_for_its_answer() {
        let peer = Peer::default();
        let active = peer.begin();
        let ticket = Ticket::new();
        let _waiting = peer.waiting(&ticket);
        assert!(ticket.start());
        std::thread::sleep(HALF_CLOSE_GRACE + Duration::from_millis(20));
        assert!(read_at_eof(&peer).is_pending());
        drop(active);
        assert!(read_at_eof(&peer).is_pending());
        assert!(is_eof(&read_at_eof(&peer)));
    }

    #[test]
    fn data_and_errors_pass_through() {
        let peer = Peer::default();
        let mut cx = Context::from_waker(Waker::noop());
        let mut bytes = [0u8; 8];
        let mut buf = ReadBuf::new(&mut bytes);
        let got = peer.poll_read(&mut cx, &mut buf, |_, b| {
            b.put_slice(b"GET");
            Poll::Ready(Ok(()))
        });
        assert!(is_eof(&got) && buf.filled() == b"GET");
        let reset = peer.poll_read(&mut cx, &mut buf, |_, _| {
            Poll::Ready(Err(io::Error::from(io::ErrorKind::ConnectionReset)))
        });
        assert!(matches!(reset, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset));
    }
}
