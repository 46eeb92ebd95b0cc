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
