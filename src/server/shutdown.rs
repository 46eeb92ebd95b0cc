//! Shutdown signals: SIGTERM and SIGINT, for the async worker and the synchronous
//! supervisor. Both are installed before the process reports itself ready, so a signal sent
//! as soon as it is ready is never lost to the default action.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGTERM and SIGINT as async streams (a worker's event loop awaits them).
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Starts listening; must run inside a tokio runtime.
    pub fn install() -> io::Result<Signals> {
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    /// Resolves at the next SIGTERM or SIGINT, with its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// The last SIGTERM/SIGINT received by a process that polls ([`install_flag`]); 0: none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe: one atomic store.
    RECEIVED.store(sig, Ordering::SeqCst);
}

/// Records SIGTERM and SIGINT in a flag instead of terminating (the supervisor polls it).
pub fn install_flag() -> io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic; the sigaction struct is zeroed
        // (an empty mask, no flags) and then given the handler.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal received since [`install_flag`], if any, by name.
pub fn received() -> Option<&'static str> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        libc::SIGINT => Some("SIGINT"),
        _ => Some("SIGTERM"),
    }
}

/// Sends `SIGTERM` (graceful) or `SIGKILL` to process `pid`.
pub fn send(pid: u32, kill: bool) {
    let sig = if kill { libc::SIGKILL } else { libc::SIGTERM };
    // SAFETY: kill has no memory-safety preconditions; a stale pid is reported as ESRCH.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Asks the kernel to send `sig` to this process when the thread that started it exits, and
/// exits now if that parent is already gone (`parent` is its pid as the parent saw it).
pub fn die_with_parent(parent: u32, sig: libc::c_int) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number; getppid has no preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong);
        if libc::getppid() as u32 != parent {
            std::process::exit(1);
        }
    }
}
