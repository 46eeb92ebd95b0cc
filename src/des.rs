//! The discrete-event engine: an integer-nanosecond clock, an event queue whose ties come
//! out in insertion order, and seeded random-number streams, one per named component.
//!
//! It knows nothing of serving; [`crate::sim`] builds the serving system on it.
//!
//! ```
//! use servesim::des::{EventQueue, ms};
//!
//! let mut q = EventQueue::new();
//! q.push(ms(2.0), "second");
//! q.push(ms(1.0), "first");
//! q.push(ms(2.0), "third"); // same time as "second": comes out after it
//! let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
//! assert_eq!(order, ["first", "second", "third"]);
//! ```

mod queue;
mod rng;
mod time;

pub use queue::EventQueue;
pub use rng::{RngStreams, StreamRng, fnv1a};
pub use time::{Nanos, ceil_ns, ms, ns_to_ms, ns_to_s, round_ns, s, us};
