//! The `servesim` command line: parse, call the library, map errors to exit codes.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    restore_sigpipe();
    cli::main()
}

/// Lets a closed stdout end the process quietly (`servesim simulate … | head`), as it does
/// for other command-line tools, instead of a panic in `println!`. Rust ignores SIGPIPE by
/// default; the server keeps that (a client that hangs up must not stop it), and sockets
/// never raise it anyway (the standard library sends with `MSG_NOSIGNAL`).
fn restore_sigpipe() {
    if std::env::args_os().nth(1).is_some_and(|c| c == "serve") {
        return;
    }
    // SAFETY: called first in `main`, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
