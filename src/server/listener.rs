//! Sockets: one port shared by every worker process (`SO_REUSEPORT`), and a listener that
//! bounds a worker's open connections and reads each through its [`Peer`].
//!
//! The supervisor *reserves* the port — binds it with `SO_REUSEPORT` but never listens, so
//! the kernel gives it no connections — then each worker binds the same port and listens,
//! and the kernel spreads incoming connections over the workers by a hash of the
//! connection's addresses. The supervisor closes its socket once every worker listens.

use super::peer::Peer;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Pending connections the kernel queues per listening socket.
const BACKLOG: i32 = 1024;

fn shared_socket(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&SockAddr::from(addr))?;
    Ok(s)
}

/// Binds `127.0.0.1:port` (0: an ephemeral port) with `SO_REUSEPORT` without listening;
/// returns the socket, to keep until the workers listen, and the address it got.
pub fn reserve(port: u16) -> io::Result<(Socket, SocketAddr)> {
    let s = shared_socket(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    let addr = s.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an IP socket"))?;
    Ok((s, addr))
}

/// Binds `addr` with `SO_REUSEPORT` and listens: one worker's share of the port.
pub fn listen_shared(addr: SocketAddr) -> io::Result<StdListener> {
    let s = shared_socket(addr)?;
    s.listen(BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Binds a private ephemeral loopback port (a worker's admin address).
pub fn listen_private() -> io::Result<StdListener> {
    let l = StdListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// A listener that holds at most `max` connections open; beyond it, `accept` waits and
/// new connections queue in the kernel. Accepted connections have `TCP_NODELAY` set, so
/// small responses are not held back by Nagle's algorithm.
pub struct Limited {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

impl Limited {
    /// Wraps `inner` (which must be registered with the current runtime).
    pub fn new(inner: TcpListener, max: u32) -> Self {
        Self { inner, permits: Arc::new(Semaphore::new(max.max(1) as usize)) }
    }
}

/// An accepted connection, holding one of its listener's permits until it closes. Its EOF
/// goes through its [`Peer`]: a half-closed client's request is answered before the
/// connection closes.
pub struct Conn {
    stream: TcpStream,
    peer: Peer,
    _permit: OwnedSemaphorePermit,
}

/// Each request carries its connection's [`Peer`] (`ConnectInfo<Peer>`).
impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Limited>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Limited>) -> Self {
        stream.io().peer.clone()
    }
}

impl axum::serve::Listener for Limited {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        let permit = Arc::clone(&self.permits).acquire_owned().await.expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (Conn { stream, peer: Peer::default(), _permit: permit }, addr);
                }
                // Out of descriptors or a connection reset before accept: back off briefly.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Conn { stream, peer, .. } = &mut *self;
        peer.poll_read(cx, buf, |cx, buf| Pin::new(stream).poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_port_can_be_shared_by_two_listeners() {
        let (_reserved, addr) = reserve(0).unwrap();
        assert!(addr.port() != 0 && addr.ip().is_loopback());
        let a = listen_shared(addr).unwrap();
        let b = listen_shared(addr).unwrap();
        assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
        // Without SO_REUSEPORT the port is taken.
        assert!(StdListener::bind(addr).is_err());
    }
}
