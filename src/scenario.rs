//! Scenario files: one TOML file describes an experiment — the clients, the serving
//! system and the workload — and drives both backends (the simulator and the real server).
//!
//! A file is parsed, overridden (`--set path=value`), checked against the schema (unknown
//! keys are rejected with the list of valid ones) and validated (every bad value names its
//! path and the fix) before anything runs. See [`Scenario`] for every field, its unit and
//! its default; `models/*.toml` are worked examples.
//!
//! ```toml
//! [system]
//! cores = 4
//! [worker]
//! handler = "sync"
//! threads = 40
//! lock = "gil"
//! [clients]
//! kind = "closed"
//! users = 50
//! [cost]
//! token_locked_ms = 1.667
//! token_free_ms = 2.333
//! ```
//!
//! Parsing, overriding, deriving, and what a bad value is told:
//!
//! ```
//! use servesim::scenario::{LockKind, Override, Scenario};
//! use std::path::Path;
//!
//! let text = "[worker]\nthreads = 40\nlock = \"gil\"\n[clients]\nusers = 50\n";
//! let set: Override = "worker.threads=8".parse()?;
//! let sc = Scenario::parse(text, Path::new("lesson.toml"), Path::new("."), &[set])?;
//! assert_eq!((sc.worker.threads, sc.worker.lock, sc.clients.users), (8, LockKind::Gil, 50));
//! // A derived scenario is validated again, and a bad value names its field and the fix.
//! let err = sc.with(&["worker.threads=0".parse()?]).unwrap_err().to_string();
//! assert!(err.contains("worker.threads must be ≥ 1, got 0"), "{err}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod calibration;
mod load;
mod target;
pub(crate) mod types;
mod validate;

pub use calibration::{BatchStep, CALIBRATION_FORMAT, Calibration, Machine, Samples};
// The bound of every input file, here too where it was first defined.
pub use crate::input::MAX_FILE_BYTES;
pub(crate) use load::read_scenario;
pub use load::{Override, ScenarioError};
pub use target::{TargetSpec, Vars as TargetVars};
pub use types::{
    Arrivals, Balancer, Batching, BatchingMode, ClientKind, Clients, Cost, Handler, LockKind, Run, Scenario,
    Scheduler, System, Worker, Workload,
};
pub(crate) use validate::{MAX_RATE_RPS, MIN_RATE_RPS, show};
