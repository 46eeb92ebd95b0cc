//! Sockets: one port shared by every worker process (`SO_REUSEPORT`), a private admin port
//! per worker, and the descriptor limit that bounds a worker's open connections.
//!
//! The supervisor creates and owns one listening socket per worker slot, all bound to the
//! same port with `SO_REUSEPORT` ([`listen_group`]); the kernel spreads incoming
//! connections over them by a hash of the connection's addresses. Each worker process
//! inherits its slot's socket ([`pass_to`], [`inherit`]) and accepts on it. As in
//! gunicorn's arbiter, the socket outlives the worker: when a worker dies its socket stays
//! open in the supervisor, so connections the hash sends it meanwhile wait in its accept
//! queue for the replacement, which is handed the same socket, and the group the hash
//! spreads over never changes. The supervisor closes its copies when it stops.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::mem::ManuallyDrop;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Pending connections the kernel queues per listening socket.
const BACKLOG: i32 = 1024;

fn listen_shared(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&SockAddr::from(addr))?;
    s.listen(BACKLOG)?;
    Ok(s)
}

/// `n` listening sockets on `127.0.0.1:port` (0: an ephemeral port), each bound with
/// `SO_REUSEPORT`, and the address they share. Each is close-on-exec: only the process it
/// is passed to ([`pass_to`]) inherits it.
pub fn listen_group(port: u16, n: usize) -> io::Result<(Vec<Socket>, SocketAddr)> {
    let first = listen_shared(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    let addr = first.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an IP socket"))?;
    let mut group = vec![first];
    for _ in 1..n {
        group.push(listen_shared(addr)?);
    }
    Ok((group, addr))
}

/// Sets or clears `fd`'s close-on-exec flag. Async-signal-safe: fcntl only.
fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl with F_GETFD/F_SETFD only reads and writes the descriptor's flags; a
    // descriptor that is not open is reported as EBADF.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        let want = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, want) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Lets the process `cmd` starts inherit `socket`, under the same descriptor number
/// (returned, for the child to be told). Other descriptors stay close-on-exec.
pub fn pass_to(cmd: &mut Command, socket: &Socket) -> RawFd {
    let fd = socket.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl, which
    // is async-signal-safe; `fd` is open in the parent while it spawns, so in the child too.
    unsafe {
        cmd.pre_exec(move || set_cloexec(fd, false));
    }
    fd
}

/// Takes the listening socket inherited as descriptor `fd` ([`pass_to`]), checking that it
/// is a socket listening on `addr`, and makes it non-blocking and close-on-exec again. A
/// descriptor that fails the check is left open and untouched.
pub fn inherit(fd: RawFd, addr: SocketAddr) -> io::Result<StdListener> {
    let not_ours = |why: String| io::Error::other(format!("inherited descriptor {fd}: {why}"));
    let mut listening: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes to `listening`; a descriptor that is not
    // open, or not a socket, is reported as an error.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut listening).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(not_ours(io::Error::last_os_error().to_string()));
    }
    // SAFETY: `fd` is an open socket (checked above), passed to this process for this use
    // alone: nothing else in it owns the descriptor. ManuallyDrop keeps it open on failure.
    let s = ManuallyDrop::new(unsafe { Socket::from_raw_fd(fd) });
    let local = s.local_addr().ok().and_then(|a| a.as_socket());
    if listening == 0 || local != Some(addr) {
        let listening = listening != 0;
        return Err(not_ours(format!(
            "not a socket listening on {addr} (listening: {listening}, bound to {local:?})"
        )));
    }
    let s = ManuallyDrop::into_inner(s);
    set_cloexec(fd, true)?;
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
    fn a_group_shares_one_port_that_no_plain_bind_can_take() {
        let (group, addr) = listen_group(0, 3).unwrap();
        assert!(addr.port() != 0 && addr.ip().is_loopback());
        for s in &group {
            assert_eq!(s.local_addr().unwrap().as_socket(), Some(addr));
            assert!(s.is_listener().unwrap());
        }
        // Without SO_REUSEPORT the port is taken.
        assert!(StdListener::bind(addr).is_err());
    }

    #[test]
    fn only_a_socket_listening_on_the_address_is_inherited() {
        let (group, addr) = listen_group(0, 1).unwrap();
        let elsewhere = SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port() ^ 1));
        let err = inherit(group[0].as_raw_fd(), elsewhere).unwrap_err();
        assert!(err.to_string().contains("not a socket listening on"), "{err}");
        let file = std::fs::File::open("/dev/null").unwrap();
        let err = inherit(file.as_raw_fd(), addr).unwrap_err();
        assert!(err.to_string().starts_with("inherited descriptor"), "{err}");
        // Both were left open, and the right one is taken.
        let l = inherit(group[0].as_raw_fd(), addr).unwrap();
        assert_eq!(l.local_addr().unwrap(), addr);
        // `l` now owns the descriptor.
        std::mem::forget(group);
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
