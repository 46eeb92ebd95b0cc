//! One client's requests to a one-thread server, each response's time split into the
//! model's work inside and outside the kernels and the time spent outside the handler.

use super::client::{body, counters, send};
use super::{CalibrateError, CalibrateOptions};
use crate::scenario::{Calibration, Scenario};
use crate::server::ServerProcess;
use crate::server::client::Connection;
use std::time::{Duration, Instant};

/// Means of the emulated work the server adds per request (ms): (loop, locked, free), where
/// locked and free are (per request, per token).
pub(super) struct Nominal {
    loop_ms: f64,
    locked: (f64, f64),
    free: (f64, f64),
}

impl Nominal {
    pub(super) fn of(c: &crate::server::EmulatedCost) -> Self {
        Self {
            loop_ms: c.loop_in_free_ms.mean()
                + c.loop_in_ms.mean()
                + c.loop_out_ms.mean()
                + c.loop_out_free_ms.mean(),
            locked: (c.request_locked_ms.mean(), c.token_locked_ms.mean()),
            free: (c.request_free_ms.mean(), c.token_free_ms.mean()),
        }
    }
}

/// One response's time beyond the nominal emulated work (ms).
pub(super) struct Sample {
    overhead_ms: f64,
    token_locked_ms: f64,
    token_free_ms: f64,
}

/// What the single-client run measured.
pub(super) struct Single {
    pub(super) samples: Vec<Sample>,
    /// The event loop's CPU per request beyond its nominal emulated work (ms).
    loop_ms: f64,
}

/// Sends the scenario's request from one keep-alive client and splits each response's time;
/// also returns, from the server's own counters, the event loop's mean CPU time per measured
/// request (before its nominal emulated loop work).
///
/// The server does the scenario's emulated work too, so that what emulating it costs beyond
/// its nominal amount (timer reads, lock operations at every slice) is measured with the
/// real costs: each sample is the measured time minus the nominal emulated mean.
pub(super) fn requests(
    srv: &ServerProcess,
    sc: &Scenario,
    nominal: &Nominal,
    opts: &CalibrateOptions,
) -> Result<Single, CalibrateError> {
    let body = body(sc);
    let mut conn = Connection::open(srv.addr(), Duration::from_secs(30))
        .map_err(|e| CalibrateError::Request { index: 0, message: e.to_string() })?;
    let mut out = Vec::with_capacity(opts.requests as usize);
    let mut before = if opts.warmup == 0 { Some(counters(srv)?) } else { None };
    for i in 0..opts.warmup + opts.requests {
        let (t0, cpu0) = (Instant::now(), thread_cpu_ms());
        let r = send(&mut conn, &body, i)?;
        let latency_ms = t0.elapsed().as_secs_f64() * 1e3;
        // This client's own CPU for the request: the load generator's, which the simulator
        // runs as work of its own (`clients.cpu_ms`), not as time outside the server.
        let client_ms = thread_cpu_ms() - cpu0;
        if i < opts.warmup {
            if i + 1 == opts.warmup {
                before = Some(counters(srv)?);
            }
            continue;
        }
        let t = &r.timing;
        let n = f64::from(t.tokens.max(1));
        let free = t.matmul_ms + t.busy_free_ms;
        let locked = t.compute_ms - free;
        out.push(Sample {
            overhead_ms: (latency_ms - client_ms - t.compute_ms - t.lock_wait_ms - nominal.loop_ms).max(0.0),
            token_locked_ms: ((locked - nominal.locked.0) / n - nominal.locked.1).max(0.0),
            token_free_ms: ((free - nominal.free.0) / n - nominal.free.1).max(0.0),
        });
    }
    let used = counters(srv)?.since(&before.unwrap_or_default());
    let n = f64::from(opts.requests);
    Ok(Single { samples: out, loop_ms: (used.loop_cpu_ms / n - nominal.loop_ms).max(0.0) })
}

/// CPU time of the calling thread so far (ms).
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec; the clock id is a Linux constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

impl Single {
    /// Records the single client's costs in `cal`: the event loop's CPU per request, half
    /// before and half after the handler, the rest of each request's time outside the
    /// handler (spent off the server's threads) and each token's work.
    pub(super) fn record(self, cal: &mut Calibration) {
        let n = self.samples.len();
        let overhead_ms = self.samples.iter().map(|s| s.overhead_ms).sum::<f64>() / n.max(1) as f64;
        let loop_ms = self.loop_ms.min(overhead_ms);
        cal.loop_in_ms = vec![loop_ms / 2.0];
        cal.loop_out_ms = vec![loop_ms / 2.0];
        for s in self.samples {
            cal.rtt_ms.push((s.overhead_ms - loop_ms).max(0.0));
            cal.token_locked_ms.push(s.token_locked_ms);
            cal.token_free_ms.push(s.token_free_ms);
        }
        // The per-request part is folded into the tokens (the prefill is the first token's pass).
        cal.request_locked_ms = vec![0.0];
        cal.request_free_ms = vec![0.0];
    }
}
