//! The calibration's client: the request it sends, and the server's own counters it reads.

use super::CalibrateError;
use crate::scenario::Scenario;
use crate::server::client::Connection;
use crate::server::{CorrectResponse, ServerProcess};

/// The request the calibration sends: the scenario's prompt length and its mean tokens.
pub(super) fn body(sc: &Scenario) -> String {
    let tokens = match sc.workload.new_tokens {
        crate::workload::Dist::Const(n) => n.round().max(1.0) as u32,
        ref d => d.mean().round().max(1.0) as u32,
    };
    let sentence: String = "the quick brown fox jumps over the lazy dog "
        .chars()
        .cycle()
        .take(sc.workload.prompt_chars.max(1) as usize)
        .collect();
    serde_json::json!({ "sentence": sentence, "max_new_tokens": tokens }).to_string()
}

/// One request on `conn`, answered 200.
pub(super) fn send(conn: &mut Connection, body: &str, index: u32) -> Result<CorrectResponse, CalibrateError> {
    let fail = |message: String| CalibrateError::Request { index, message };
    let resp = conn
        .request("POST", "/correct", Some(body.as_bytes()), &[("Content-Type", "application/json")])
        .map_err(|e| fail(e.to_string()))?;
    if resp.status != 200 {
        return Err(fail(format!("status {}: {}", resp.status, String::from_utf8_lossy(&resp.body))));
    }
    resp.json().map_err(|e| fail(e.to_string()))
}

/// The server's cumulative counters that calibration reads, summed over workers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counters {
    pub(super) loop_cpu_ms: f64,
    pub(super) held_ms: f64,
    pub(super) handoffs: u64,
    pub(super) completed: u64,
}

impl Counters {
    pub(super) fn since(&self, before: &Counters) -> Counters {
        Counters {
            loop_cpu_ms: self.loop_cpu_ms - before.loop_cpu_ms,
            held_ms: self.held_ms - before.held_ms,
            handoffs: self.handoffs.saturating_sub(before.handoffs),
            completed: self.completed.saturating_sub(before.completed),
        }
    }
}

pub(super) fn counters(srv: &ServerProcess) -> Result<Counters, CalibrateError> {
    let stats =
        srv.stats().map_err(|e| CalibrateError::Request { index: 0, message: format!("/stats: {e}") })?;
    Ok(stats.iter().fold(Counters::default(), |c, w| Counters {
        loop_cpu_ms: c.loop_cpu_ms + w.loop_cpu_ms,
        held_ms: c.held_ms + w.lock_stats.held_ms,
        handoffs: c.handoffs + w.lock_stats.handoffs,
        completed: c.completed + w.requests.completed,
    }))
}
