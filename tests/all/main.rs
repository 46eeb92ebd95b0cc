//! Integration tests: one binary, one module per topic.

mod analytic;
mod cli;
mod des;
#[cfg(all(feature = "server", feature = "load"))]
mod faults;
#[cfg(feature = "model")]
mod gpt;
#[cfg(feature = "load")]
mod load;
mod scenario;
#[cfg(all(feature = "server", feature = "load"))]
mod server;
#[cfg(all(feature = "server", feature = "load"))]
mod server_hardening;
mod sim;
mod sweep;

/// A scratch directory named `servesim-{name}-…`, removed when dropped, even when the test
/// fails.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("servesim-{name}-")).tempdir().expect("a scratch directory")
}
