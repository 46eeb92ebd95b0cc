//! What is sent: service-time distributions and the request mix, shared by the simulator
//! (which samples them) and the real backend (which emulates them as busy work).

mod dist;

pub use dist::{Dist, DistError, Sampler, read_samples};
