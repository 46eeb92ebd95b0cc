//! The future-event list: a binary heap ordered by (time, insertion sequence), with a FIFO
//! in front of it for a run of events at one time.
//!
//! Most pushes in a simulation are "the next arrival" or "right now" (a closed-loop user
//! that does not think), made when few or no other events share that time. Such a push goes
//! to the FIFO instead of the heap when the FIFO is empty or holds events of the same time:
//! every FIFO event then has a later sequence number than every heap event of that time, so
//! taking the heap's top first on ties keeps the exact (time, sequence) order, and the
//! common case never touches the heap.

use super::Nanos;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

struct Entry<E> {
    time: Nanos,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    // Reversed: BinaryHeap is a max-heap and the earliest (time, seq) must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// Events ordered by time; events at the same time come out in the order they were pushed.
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    /// Events at `front_time`, in push order, each pushed after every heap event of that
    /// time.
    front: VecDeque<E>,
    front_time: Nanos,
    next_seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self { heap: BinaryHeap::new(), front: VecDeque::new(), front_time: 0, next_seq: 0 }
    }

    /// Schedules `event` at `time`.
    #[inline]
    pub fn push(&mut self, time: Nanos, event: E) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.front.is_empty() {
            self.front_time = time;
            self.front.push_back(event);
        } else if time == self.front_time {
            self.front.push_back(event);
        } else {
            self.heap.push(Entry { time, seq, event });
        }
    }

    /// Whether the heap's top comes before the FIFO's head (ties: the heap's was pushed
    /// first).
    #[inline]
    fn heap_first(&self) -> bool {
        self.front.is_empty() || self.heap.peek().is_some_and(|e| e.time <= self.front_time)
    }

    /// Removes and returns the earliest event (first pushed among equal times).
    #[inline]
    pub fn pop(&mut self) -> Option<(Nanos, E)> {
        if self.heap_first() {
            self.heap.pop().map(|e| (e.time, e.event))
        } else {
            self.front.pop_front().map(|e| (self.front_time, e))
        }
    }

    /// Time of the earliest event.
    #[inline]
    pub fn peek_time(&self) -> Option<Nanos> {
        if self.heap_first() { self.heap.peek().map(|e| e.time) } else { Some(self.front_time) }
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len() + self.front.len()
    }

    /// Whether no event is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.front.is_empty()
    }

    /// Events pushed since the queue was made.
    pub fn pushed(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::des::StreamRng;
    use rand::{RngExt, SeedableRng};
    use std::collections::BTreeMap;

    /// Pushes the way a simulation does — at the current time, or a little or much later —
    /// interleaved with pops, against a `BTreeMap` keyed by (time, push number).
    #[test]
    fn simulation_like_use_matches_a_btreemap() {
        let mut rng = StreamRng::seed_from_u64(3);
        let (mut q, mut model, mut now) = (EventQueue::new(), BTreeMap::new(), 0u64);
        for id in 0..200_000u64 {
            if rng.random_range(0..5) < 3 {
                let t = match rng.random_range(0..4) {
                    0 => now,
                    1 => now + rng.random_range(0..3),
                    _ => now + rng.random_range(0..1_000),
                };
                q.push(t, id);
                model.insert((t, id), id);
            } else {
                let want = model.pop_first().map(|((t, _), id)| (t, id));
                let got = q.pop();
                assert_eq!(got, want);
                if let Some((t, _)) = got {
                    now = t;
                }
            }
            assert_eq!(q.peek_time(), model.keys().next().map(|k| k.0));
            assert_eq!(q.len(), model.len());
        }
    }
}
