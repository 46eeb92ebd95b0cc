//! Simulated time: integer nanoseconds, so event order is exact and runs reproduce bit
//! for bit.

/// A point in or a span of simulated time [ns].
pub type Nanos = u64;

/// Converts a non-negative duration to whole nanoseconds, rounding to nearest and
/// saturating (negative or NaN inputs give 0).
#[inline]
fn to_ns(x: f64) -> Nanos {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        x.round().min(u64::MAX as f64) as Nanos
    }
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
    }
}
