//! Integration tests: one binary, one module per topic.

mod analytic;
mod cli;
mod des;
#[cfg(feature = "model")]
mod gpt;
mod scenario;
mod sim;
mod sweep;
