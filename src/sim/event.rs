//! The events the serving system schedules on the event queue.

/// Scheduled events. CPU completions and GIL drop deadlines are not queued: the
/// processor-sharing cores and the locks are asked for their next time directly.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ev {
    /// Client `client` sends a request.
    Arrive { client: u32 },
    /// `static` batching: worker `worker`'s oldest waiting request has waited
    /// `max_wait_ms` (ignored unless `stamp` is still the batcher's).
    BatchTimeout { worker: u32, stamp: u32 },
    /// Request `req`'s reply reaches its client (`cost.rtt_ms` after the server sent it).
    Deliver { req: u32 },
    /// CPython's GIL: the OS has woken `thread` (signalled, timed out, or switched).
    GilWake { thread: u32 },
    /// The load generator, on a CPU of its own, is done with its current job.
    LoadGenDone,
}
