//! A worker's heartbeat, which the supervisor's watchdog awaits: a line on the worker's
//! stdout ([`super::worker::WorkerEvent::Heartbeat`]) every beat interval while its event
//! loop makes progress.
//!
//! ```text
//!  event loop: a ticker task every interval ──┐
//!     async-blocking handler: every token ────┼─► progress += 1
//!  beat thread, every interval: progress moved since the last beat? ─► {"event":"heartbeat"}
//! ```
//!
//! The loop makes progress whenever it is free to run its ticker, and in `async-blocking`
//! at every token boundary of a handler running on it. A loop stuck on one piece of work, a
//! deadlocked worker and a stopped process (SIGSTOP) all go silent; the supervisor kills a
//! worker silent for longer than `limits.heartbeat_timeout_ms` and starts a replacement.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Progress of this process's event loop.
static PROGRESS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread is the worker's event loop.
    static ON_LOOP: Cell<bool> = const { Cell::new(false) };
}

/// Records progress when called on the worker's event loop (a handler at a token boundary);
/// a pool thread's progress says nothing of the loop and is not recorded.
pub fn loop_progress() {
    if ON_LOOP.with(Cell::get) {
        PROGRESS.fetch_add(1, Ordering::Relaxed);
    }
}

/// The interval between beats for a heartbeat deadline: a fifth of it, between 10 ms and
/// 1 s.
pub fn interval(timeout: Duration) -> Duration {
    (timeout / 5).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Starts beating every `interval`: marks the calling thread — which must be the worker's
/// event loop, inside its runtime — as the loop, spawns the loop's ticker task and the beat
/// thread, which calls `beat` whenever the loop progressed since its last beat.
pub fn start(interval: Duration, beat: impl Fn() + Send + 'static) -> std::io::Result<()> {
    ON_LOOP.with(|c| c.set(true));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            loop_progress();
        }
    });
    std::thread::Builder::new().name("heartbeat".into()).spawn(move || {
        let mut seen = PROGRESS.load(Ordering::Relaxed);
        loop {
            std::thread::sleep(interval);
            let now = PROGRESS.load(Ordering::Relaxed);
            if now != seen {
                seen = now;
                beat();
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_are_a_fifth_of_the_deadline_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(interval(ms(100)), ms(20));
        assert_eq!(interval(ms(10_000)), ms(1_000));
        assert_eq!(interval(ms(3_600_000)), ms(1_000));
        assert_eq!(interval(ms(20)), ms(10));
    }

    #[test]
    fn only_the_loop_thread_records_progress() {
        let before = PROGRESS.load(Ordering::Relaxed);
        std::thread::spawn(loop_progress).join().unwrap();
        assert_eq!(PROGRESS.load(Ordering::Relaxed), before, "a pool thread's progress is not the loop's");
        std::thread::spawn(|| {
            ON_LOOP.with(|c| c.set(true));
            loop_progress();
        })
        .join()
        .unwrap();
        assert_eq!(PROGRESS.load(Ordering::Relaxed), before + 1);
    }
}
