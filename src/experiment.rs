//! Experiments: the commands users run, as library calls — simulate, and (with the real
//! backend) measure, calibrate, validate and sweep — and their reports.

mod simulate;

pub use simulate::{SimulateOutput, simulate};
