//! The candidates a capacity search visits: cores × workers × handler × threads, and
//! continuous batching when the scenario gives step costs.

use super::CapacityQuery;
use crate::scenario::{Handler, Override};
use serde::{Deserialize, Serialize};

/// Threadpool sizes tried.
const THREADS: [u32; 8] = [1, 2, 4, 8, 16, 32, 40, 64];
/// Handlers tried, in order of preference among equally cheap candidates.
const HANDLERS: [Handler; 3] = [Handler::Sync, Handler::AsyncOffload, Handler::AsyncBlocking];

/// Largest batch sizes tried (continuous batching), when the scenario has step costs.
const BATCHES: [u32; 6] = [2, 4, 8, 16, 32, 64];

/// One configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// CPU cores.
    pub cores: u32,
    /// Worker processes.
    pub workers: u32,
    /// Handler.
    pub handler: Handler,
    /// Threadpool size.
    pub threads: u32,
    /// Largest batch of continuous batching (0: no batching).
    pub max_batch: u32,
}

impl Config {
    pub(super) fn overrides(&self, rate_rps: f64) -> Vec<Override> {
        let o = |p: &str, v: toml::Value| Override { path: p.into(), value: v };
        let handler = serde_json::to_value(self.handler).ok().and_then(|v| v.as_str().map(String::from));
        let batching = if self.max_batch == 0 { "none" } else { "continuous" };
        vec![
            o("batching.mode", batching.into()),
            o("batching.max_batch", i64::from(self.max_batch.max(1)).into()),
            o("system.cores", i64::from(self.cores).into()),
            o("system.workers", i64::from(self.workers).into()),
            o("worker.threads", i64::from(self.threads).into()),
            o("worker.handler", handler.unwrap_or_default().into()),
            o("clients.kind", "open".into()),
            o("clients.rate_rps", rate_rps.into()),
        ]
    }
}

/// Every configuration up to `max_cores`; batched ones only when the scenario gives step
/// costs.
pub(super) fn candidates(q: &CapacityQuery, batching: bool) -> Vec<Config> {
    let mut out = Vec::new();
    for cores in 1..=q.max_cores {
        for workers in 1..=cores {
            for handler in HANDLERS {
                let threads: &[u32] =
                    if handler == Handler::AsyncBlocking { &THREADS[..1] } else { &THREADS };
                out.extend(threads.iter().map(|&threads| Config {
                    cores,
                    workers,
                    handler,
                    threads,
                    max_batch: 0,
                }));
            }
            if batching {
                out.extend(BATCHES.iter().map(|&max_batch| Config {
                    cores,
                    workers,
                    handler: Handler::Sync,
                    threads: 1,
                    max_batch,
                }));
            }
        }
    }
    out
}
