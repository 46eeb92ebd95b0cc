//! The progress line: requests done against the target count, or elapsed time against the
//! duration, refreshed a few times a second.

use super::ctx::Ctx;
use super::{LoadPlan, Stop};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(200);

/// A progress bar for `plan`, drawn on stderr: by requests when their number is known,
/// else by elapsed time (ms).
pub fn progress_bar(plan: &LoadPlan) -> ProgressBar {
    let (len, template) = match (plan.expected_requests(), plan.stop) {
        (Some(n), _) => (n, "{bar:30} {pos}/{len} requests  {msg}"),
        (None, Stop::Duration(d)) => (
            u64::try_from((plan.warmup + d).as_millis()).unwrap_or(u64::MAX),
            "{bar:30} {elapsed} / {prefix}  {msg}",
        ),
        (None, Stop::Requests(n)) => (n, "{bar:30} {pos}/{len} requests  {msg}"),
    };
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    if let Stop::Duration(d) = plan.stop {
        pb.set_prefix(format!("{:.0}s", (plan.warmup + d).as_secs_f64()));
    }
    pb
}

/// Redraws `pb` from the run's counters until aborted.
pub fn spawn_ticker(pb: ProgressBar, ctx: Arc<Ctx>, by_requests: bool) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let c = &ctx.counters;
            let done = c.done.load(Relaxed);
            if by_requests {
                pb.set_position(done);
            } else {
                pb.set_position(u64::try_from(ctx.start.elapsed().as_millis()).unwrap_or(u64::MAX));
            }
            pb.set_message(format!(
                "{done} done, {} errors, {} in flight",
                c.errors.load(Relaxed),
                c.in_flight.load(Relaxed)
            ));
        }
    })
}
