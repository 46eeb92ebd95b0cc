//! A run's arithmetic: where progress `p` lies among its pairs of `a` ns of bytecode (the
//! GIL held) and `b` ns of C call (the GIL free), and where its next release point, C call
//! end and mutex point are.

/// Float rounding allowed on a position, relative to a pair's length: a run has at most
/// 1e4 pairs, so positions carry errors near 1e-12 of a pair.
const EPS: f64 = 1e-9;

/// The pair of a run (`a` locked, then `b` free) that progress `p` lies in, and the offset
/// within it; a position within rounding of a pair's end is the next pair's start.
pub(super) fn pair_of(a: f64, b: f64, p: f64) -> (f64, f64) {
    let per = a + b;
    let k = (p / per).floor();
    let x = p - k * per;
    if x >= per * (1.0 - EPS) { (k + 1.0, 0.0) } else { (k, x.max(0.0)) }
}

/// Locked work in the first `p` ns of a run.
pub(super) fn locked_upto(a: f64, b: f64, p: f64) -> f64 {
    if b == 0.0 {
        return p;
    }
    let (k, x) = pair_of(a, b, p);
    k * a + x.min(a)
}

/// The first release point of the run strictly after `p`: the end of a locked slice.
pub(super) fn next_release(a: f64, b: f64, p: f64) -> f64 {
    let per = a + b;
    let (k, x) = pair_of(a, b, p);
    if x < a - per * EPS { k * per + a } else { (k + 1.0) * per + a }
}

/// Where the C call that `p` lies in (or the pair) ends.
pub(super) fn call_end(a: f64, b: f64, p: f64) -> f64 {
    (pair_of(a, b, p).0 + 1.0) * (a + b)
}

/// The next point of the run strictly after `p` at which its thread takes `gil->mutex`: a
/// release point (to drop the GIL) or the end of a C call (to take it back).
pub(super) fn next_mutex_point(a: f64, b: f64, p: f64) -> f64 {
    let rp = next_release(a, b, p);
    if b == 0.0 { rp } else { rp.min(call_end(a, b, p)) }
}

/// Whether progress `p` is the end of a C call (a pair's start after the first).
pub(super) fn at_call_end(a: f64, b: f64, p: f64) -> bool {
    b > 0.0 && p > 0.0 && pair_of(a, b, p).1 == 0.0
}

/// Whether progress `p` lies in a C call (the lock free).
pub(super) fn in_call(a: f64, b: f64, p: f64) -> bool {
    b > 0.0 && pair_of(a, b, p).1 >= a - (a + b) * EPS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_arithmetic() {
        // Pairs of 3 ns locked, 2 ns free.
        assert_eq!(locked_upto(3.0, 2.0, 0.0), 0.0);
        assert_eq!(locked_upto(3.0, 2.0, 4.0), 3.0);
        assert_eq!(locked_upto(3.0, 2.0, 6.0), 4.0);
        assert_eq!(locked_upto(3.0, 0.0, 6.0), 6.0);
        assert_eq!(next_release(3.0, 2.0, 0.0), 3.0);
        assert_eq!(next_release(3.0, 2.0, 3.0), 8.0, "strictly after");
        assert_eq!(next_release(3.0, 2.0, 4.0), 8.0);
        assert_eq!(next_release(0.0, 2.0, 0.0), 2.0, "no bytecode: the release at 0 is past");
        assert!(!in_call(3.0, 2.0, 2.9));
        assert!(in_call(3.0, 2.0, 3.0));
        assert!(in_call(3.0, 2.0, 4.9));
        assert!(!in_call(3.0, 2.0, 5.0));
        assert!(!in_call(3.0, 0.0, 3.0), "no C call time: never free");
        // A pair's end, however it was rounded, is the next pair's start: in bytecode.
        let per = 0.1 + 0.2;
        for k in [1.0, 3.0, 7.0, 9999.0] {
            let end = k * per;
            for p in [end, end * (1.0 - 1e-15), end * (1.0 + 1e-15)] {
                assert!(!in_call(0.1, 0.2, p), "{p}");
                assert_eq!(pair_of(0.1, 0.2, p).0, k, "{p}");
                assert!((call_end(0.1, 0.2, p) - (k + 1.0) * per).abs() < 1e-9);
            }
        }
    }
}
