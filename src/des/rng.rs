//! Seeded random-number streams, one per named component.
//!
//! A stream is identified by (base seed, replication, name[, key]). Two configurations of
//! a sweep run with the same seed draw the same arrivals and the same service demands —
//! common random numbers — because each component draws from its own stream, whatever
//! the other components do. Keyed sub-streams (one per request) keep a request's demands
//! the same even when requests are served in a different order.

use rand::{SeedableRng, TryRng};
use std::convert::Infallible;

/// The generator behind every stream: xoshiro256++ (Blackman & Vigna, 2019), the same
/// numbers as `rand_xoshiro::Xoshiro256PlusPlus` from the same seed, bit for bit — kept
/// here so that a stream seeded per request is four words computed in registers, not a
/// byte array written, scanned for zeros and read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRng {
    s: [u64; 4],
}

impl TryRng for StreamRng {
    type Error = Infallible;

    /// The upper half of the next 64 bits (the lower bits are the weaker), as
    /// `rand_xoshiro` does.
    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.next_word() >> 32) as u32)
    }

    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next_word())
    }

    #[inline]
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        rand::rand_core::utils::fill_bytes_via_next_word(dst, || self.try_next_u64())
    }
}

impl StreamRng {
    #[inline(always)]
    fn next_word(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }
}

impl SeedableRng for StreamRng {
    type Seed = [u8; 32];

    /// The state is the seed read as four little-endian words; an all-zero seed (a state
    /// xoshiro never leaves) is replaced by `seed_from_u64(0)`'s, as `rand_xoshiro` does.
    fn from_seed(seed: [u8; 32]) -> Self {
        let mut s = [0u64; 4];
        for (w, chunk) in s.iter_mut().zip(seed.chunks_exact(8)) {
            *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        if s == [0; 4] { seed_from_u64(0) } else { Self { s } }
    }

    #[inline]
    fn seed_from_u64(seed: u64) -> Self {
        seed_from_u64(seed)
    }
}

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

/// `rand_xoshiro`'s `seed_from_u64(seed)`, bit for bit: the state is SplitMix64's first
/// four outputs from `seed`. Those are `mix` of four distinct inputs, and `mix` is a
/// bijection, so they are never all zero: no fallback to check for. A keyed stream is
/// seeded per request, so this is on the hot path.
#[inline]
fn seed_from_u64(seed: u64) -> StreamRng {
    // SplitMix64's k-th output is `mix` of its seed plus k − 1 increments (`mix` adds one).
    let word = |k: u64| mix(seed.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    StreamRng { s: [word(0), word(1), word(2), word(3)] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn first(mut r: StreamRng) -> u64 {
        r.next_u64()
    }

    #[test]
    fn streams_are_rand_xoshiros() {
        use rand::RngExt;
        use rand_xoshiro::Xoshiro256PlusPlus as Reference;
        let mut x = 0u64;
        for i in 0..10_000u64 {
            for seed in [i, x, u64::MAX - i] {
                let (mut a, mut b) = (StreamRng::seed_from_u64(seed), Reference::seed_from_u64(seed));
                for _ in 0..4 {
                    assert_eq!(a.next_u64(), b.next_u64(), "seed {seed}");
                    assert_eq!(a.next_u32(), b.next_u32(), "seed {seed}");
                    assert_eq!(a.random::<f64>().to_bits(), b.random::<f64>().to_bits());
                    assert_eq!(a.random_range(0..7u32), b.random_range(0..7u32));
                }
                let (mut fa, mut fb) = ([0u8; 13], [0u8; 13]);
                a.fill_bytes(&mut fa);
                b.fill_bytes(&mut fb);
                assert_eq!(fa, fb);
            }
            x = mix(x);
        }
        for seed in [[0u8; 32], [7u8; 32], std::array::from_fn(|i| i as u8)] {
            let (mut a, mut b) = (StreamRng::from_seed(seed), Reference::from_seed(seed));
            for _ in 0..8 {
                assert_eq!(a.next_u64(), b.next_u64(), "seed {seed:?}");
            }
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
