//! Benchmarks of the real server (filled in by its issue).
fn main() {}
