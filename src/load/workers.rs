//! Which server process answered: the `x-worker-pid` header of each response, and how a
//! closed loop's users fell on the server's workers.
//!
//! A closed-loop user keeps one keep-alive connection, so all its requests go to the worker
//! that accepted that connection. Which worker that is depends on the server: servesim's
//! own workers are picked by the kernel's `SO_REUSEPORT` hash; uvicorn's `--workers N`
//! share one listening socket, and whichever worker wakes first takes the connection. A
//! server that names the answering process in [`PID_HEADER`] lets the load generator count
//! users per worker from outside.
//!
//! A user whose connection was made again (the server closed it, a request failed) may
//! have been answered by several workers: it is counted once, at the worker that answered
//! most of its requests (on a tie, the one that answered first).

use hyper::HeaderMap;
use serde::Serialize;
use std::collections::BTreeMap;

/// The response header naming the process that answered (its pid, in decimal). servesim's
/// own server sends it on every `/correct` reply; the FastAPI example on every response.
pub const PID_HEADER: &str = "x-worker-pid";

/// The pid in a response's [`PID_HEADER`], if it has one that reads as a number.
pub fn pid_of(headers: &HeaderMap) -> Option<u32> {
    headers.get(PID_HEADER)?.to_str().ok()?.trim().parse().ok()
}

/// One user's responses per answering pid, in the order the pids first answered. A user
/// meets one worker, rarely a few: a short list, grown only when a new pid answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidTally(Vec<(u32, u64)>);

impl PidTally {
    /// Counts one response from `pid` (`None`: the response did not say).
    pub fn add(&mut self, pid: Option<u32>) {
        let Some(pid) = pid else { return };
        match self.0.iter_mut().find(|(p, _)| *p == pid) {
            Some((_, n)) => *n += 1,
            None => self.0.push((pid, 1)),
        }
    }

    /// The worker this user counts at: the pid that answered most of its requests, the
    /// first to answer on a tie; `None` if no response named its worker.
    pub fn worker(&self) -> Option<u32> {
        let mut best: Option<(u32, u64)> = None;
        for &(pid, n) in &self.0 {
            if best.is_none_or(|(_, m)| n > m) {
                best = Some((pid, n));
            }
        }
        best.map(|(pid, _)| pid)
    }
}

/// How a closed loop's users fell on the server's workers, as [`PID_HEADER`] tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserSplit {
    /// Users per worker pid, each user counted once (see [`PidTally::worker`]).
    pub users: BTreeMap<u32, u32>,
    /// Users none of whose responses named a worker (no header, or no response at all).
    pub unknown: u32,
}

impl UserSplit {
    /// The split of users whose workers (see [`PidTally::worker`]) are `workers`, one entry
    /// per user.
    pub fn of(workers: impl IntoIterator<Item = Option<u32>>) -> Self {
        let mut split = Self::default();
        for w in workers {
            match w {
                Some(pid) => *split.users.entry(pid).or_insert(0) += 1,
                None => split.unknown += 1,
            }
        }
        split
    }

    /// Users counted at a worker.
    pub fn known(&self) -> u32 {
        self.users.values().sum()
    }

    /// `4101: 5, 4102: 3` (pid: users), with `, ? : n` for users of unknown worker.
    pub fn label(&self) -> String {
        let mut parts: Vec<String> = self.users.iter().map(|(pid, n)| format!("{pid}: {n}")).collect();
        if self.unknown > 0 {
            parts.push(format!("?: {}", self.unknown));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(pids: &[Option<u32>]) -> PidTally {
        let mut t = PidTally::default();
        pids.iter().for_each(|&p| t.add(p));
        t
    }

    #[test]
    fn a_user_counts_at_the_worker_that_answered_most_of_its_requests() {
        let cases: [(&[Option<u32>], Option<u32>); 6] = [
            (&[], None),
            (&[None, None], None),
            (&[Some(7), Some(7), None], Some(7)),
            // Reconnected once to another worker, which then answered most.
            (&[Some(7), Some(9), Some(9)], Some(9)),
            // A tie goes to the worker that answered first.
            (&[Some(9), Some(7), Some(7), Some(9)], Some(9)),
            (&[Some(3), Some(5), Some(5), Some(3), Some(3)], Some(3)),
        ];
        for (pids, want) in cases {
            assert_eq!(tally(pids).worker(), want, "{pids:?}");
        }
    }

    #[test]
    fn the_split_counts_each_user_once_per_pid_and_the_unknown_apart() {
        let split = UserSplit::of([Some(11), Some(12), Some(11), None, Some(11)]);
        assert_eq!(split.users, BTreeMap::from([(11, 3), (12, 1)]));
        assert_eq!((split.unknown, split.known()), (1, 4));
        assert_eq!(split.label(), "11: 3, 12: 1, ?: 1");
        assert_eq!(UserSplit::of([]), UserSplit::default());
    }

    #[test]
    fn the_header_is_read_as_a_decimal_pid_or_not_at_all() {
        let cases = [("4242", Some(4242)), (" 17 ", Some(17)), ("x", None), ("-1", None), ("", None)];
        for (value, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(PID_HEADER, value.parse().unwrap());
            assert_eq!(pid_of(&h), want, "{value:?}");
        }
        assert_eq!(pid_of(&HeaderMap::new()), None);
    }
}
