//! Seeded random-number streams, one per named component.
//!
//! A stream is identified by (base seed, replication, name[, key]). Two configurations of
//! a sweep run with the same seed draw the same arrivals and the same service demands —
//! common random numbers — because each component draws from its own stream, whatever
//! the other components do. Keyed sub-streams (one per request) keep a request's demands
//! the same even when requests are served in a different order.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// The generator behind every stream.
pub type StreamRng = Xoshiro256PlusPlus;

/// SplitMix64's finalizer: a bijective mix of 64 bits (Steele, Lea & Flood, 2014).
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, 64 bits: a hash that is stable across platforms and releases (unlike `std`'s
/// hasher), for stream names and fingerprints.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The streams of one replication.
#[derive(Debug, Clone, Copy)]
pub struct RngStreams {
    root: u64,
}

impl RngStreams {
    /// Streams for replication `replication` of base seed `seed`.
    pub fn new(seed: u64, replication: u32) -> Self {
        Self { root: mix(mix(seed) ^ u64::from(replication).wrapping_mul(0xD6E8_FEB8_6659_FD93)) }
    }

    /// The seed of the stream named `name`.
    pub fn seed_of(&self, name: &str) -> u64 {
        mix(self.root ^ fnv1a(name.as_bytes()))
    }

    /// The stream named `name`.
    pub fn stream(&self, name: &str) -> StreamRng {
        StreamRng::seed_from_u64(self.seed_of(name))
    }

    /// Sub-stream `key` of the stream named `name` (e.g. one per request).
    pub fn keyed(&self, name: &str, key: u64) -> StreamRng {
        Self::keyed_from(self.seed_of(name), key)
    }

    /// Sub-stream `key` of a stream whose seed is known (saves hashing the name).
    #[inline]
    pub fn keyed_from(stream_seed: u64, key: u64) -> StreamRng {
        seed_from_u64(mix(stream_seed ^ mix(key)))
    }
}

/// `StreamRng::seed_from_u64(seed)`, bit for bit, without the byte-slice plumbing of the
/// generic `SeedableRng::from_rng` path: the state is four SplitMix64 outputs, as
/// `rand_xoshiro` makes it. A keyed stream is seeded per request, so this is on the hot
/// path.
#[inline]
fn seed_from_u64(seed: u64) -> StreamRng {
    let mut x = seed;
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_exact_mut(8) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    // `from_seed` keeps rand_xoshiro's handling of an all-zero seed.
    StreamRng::from_seed(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn first(mut r: StreamRng) -> u64 {
        r.next_u64()
    }

    #[test]
    fn fast_seeding_is_rand_xoshiros() {
        let mut x = 0u64;
        for i in 0..10_000u64 {
            for seed in [i, x, u64::MAX - i] {
                let (mut a, mut b) = (seed_from_u64(seed), StreamRng::seed_from_u64(seed));
                for _ in 0..4 {
                    assert_eq!(a.next_u64(), b.next_u64(), "seed {seed}");
                }
            }
            x = mix(x);
        }
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a = RngStreams::new(1, 0);
        assert_eq!(first(a.stream("arrivals")), first(RngStreams::new(1, 0).stream("arrivals")));
        assert_ne!(first(a.stream("arrivals")), first(a.stream("service")));
        assert_ne!(first(a.stream("arrivals")), first(RngStreams::new(1, 1).stream("arrivals")));
        assert_ne!(first(a.stream("arrivals")), first(RngStreams::new(2, 0).stream("arrivals")));
        assert_ne!(first(a.keyed("req", 1)), first(a.keyed("req", 2)));
        assert_eq!(first(a.keyed("req", 7)), first(RngStreams::keyed_from(a.seed_of("req"), 7)));
    }
}
