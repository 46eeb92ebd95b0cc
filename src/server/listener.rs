//! Sockets: one port shared by every worker process (`SO_REUSEPORT`), a private admin port
//! per worker, and the descriptor limit that bounds a worker's open connections.
//!
//! The supervisor *reserves* the port — binds it with `SO_REUSEPORT` but never listens, so
//! the kernel gives it no connections — then each worker binds the same port and listens,
//! and the kernel spreads incoming connections over the workers by a hash of the
//! connection's addresses. The supervisor closes its socket once every worker listens.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};

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

/// Raises this process's soft limit on open descriptors to its hard limit: a worker holds
/// one per connection, slow and idle ones included, until a timeout closes them. Returns
/// the soft limit in force afterwards (0 if it cannot be read).
pub fn raise_fd_limit() -> libc::rlim_t {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
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

    #[test]
    fn the_descriptor_limit_raised_is_the_one_in_force() {
        let soft = raise_fd_limit();
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes the struct passed.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        // Where the hard limit is more than the kernel allows, the soft one stays as it was.
        assert!(soft > 0 && soft == lim.rlim_cur, "{soft} vs {}", lim.rlim_cur);
    }
}
