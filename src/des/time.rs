//! Simulated time: integer nanoseconds, so event order is exact and runs reproduce bit
//! for bit.

/// A point in or a span of simulated time (ns).
pub type Nanos = u64;

/// Rounds a duration (ns) to the nearest whole nanosecond (halves up), saturating:
/// negative or NaN inputs give 0. Plain arithmetic rather than `f64::round`, which is a
/// library call on baseline x86-64 and sits on the simulator's hot path.
#[inline]
pub fn round_ns(x: f64) -> Nanos {
    // `as` saturates: NaN and negatives → 0, huge → u64::MAX.
    (x + 0.5) as Nanos
}

/// Rounds a duration (ns) up to a whole nanosecond, saturating like [`round_ns`].
#[inline]
pub fn ceil_ns(x: f64) -> Nanos {
    let i = x as Nanos;
    if (i as f64) < x && i < Nanos::MAX { i + 1 } else { i }
}

#[inline]
fn to_ns(x: f64) -> Nanos {
    round_ns(x)
}

/// Milliseconds → nanoseconds.
#[inline]
pub fn ms(x: f64) -> Nanos {
    to_ns(x * 1e6)
}

/// Microseconds → nanoseconds.
#[inline]
pub fn us(x: f64) -> Nanos {
    to_ns(x * 1e3)
}

/// Seconds → nanoseconds.
#[inline]
pub fn s(x: f64) -> Nanos {
    to_ns(x * 1e9)
}

/// Nanoseconds → milliseconds.
#[inline]
pub fn ns_to_ms(t: Nanos) -> f64 {
    t as f64 / 1e6
}

/// Nanoseconds → seconds.
#[inline]
pub fn ns_to_s(t: Nanos) -> f64 {
    t as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_and_saturate() {
        assert_eq!(ms(1.5), 1_500_000);
        assert_eq!(us(0.0004), 0);
        assert_eq!(us(0.0006), 1);
        assert_eq!(s(2.0), 2_000_000_000);
        assert_eq!(ms(-3.0), 0);
        assert_eq!(ms(f64::NAN), 0);
        assert_eq!(s(1e30), u64::MAX);
        assert_eq!(ns_to_ms(2_500_000), 2.5);
        assert_eq!((ceil_ns(2.0), ceil_ns(2.01), ceil_ns(-1.0), ceil_ns(f64::NAN)), (2, 3, 0, 0));
        assert_eq!((round_ns(2.49), round_ns(2.5), round_ns(1e300)), (2, 3, u64::MAX));
    }
}
