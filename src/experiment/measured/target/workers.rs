//! A target's workers as seen from outside: its processes (their memory, from the process
//! group servesim started) and which of them answered whom (the `x-worker-pid` header of
//! each response, when the service sends it).

use crate::experiment::measured::measure::WorkerReport;
use crate::load::{PID_HEADER, RequestRecord, UserSplit};
use crate::scenario::{ClientKind, Scenario};

/// Every process of the service's group (`rss`: pid and resident kB), then any pid that
/// answered from outside the group (a service servesim did not start); each with the users
/// counted at it (`connections`) and the 2xx responses it sent (`completed`).
pub(super) fn reports(
    rss: &[(u32, u64)],
    records: &[RequestRecord],
    split: Option<&UserSplit>,
) -> Vec<WorkerReport> {
    let mut out: Vec<WorkerReport> =
        rss.iter().map(|&(pid, rss_kb)| WorkerReport { pid, rss_kb, completed: 0, connections: 0 }).collect();
    for r in records.iter().filter(|r| r.is_ok()) {
        if let Some(pid) = r.worker_pid {
            entry(&mut out, pid).completed += 1;
        }
    }
    for (&pid, &users) in split.map(|s| &s.users).into_iter().flatten() {
        entry(&mut out, pid).connections = u64::from(users);
    }
    out
}

/// The report of `pid`, added (memory unknown) if it is not there.
fn entry(out: &mut Vec<WorkerReport>, pid: u32) -> &mut WorkerReport {
    let i = match out.iter().position(|w| w.pid == pid) {
        Some(i) => i,
        None => {
            out.push(WorkerReport { pid, rss_kb: 0, completed: 0, connections: 0 });
            out.len() - 1
        }
    };
    &mut out[i]
}

/// What a measurement of a closed loop on several workers must say of how its users fell
/// on them: the split, or why it is unknown or incomplete. Nothing for one worker or for
/// clients that keep no connection.
pub(super) fn notes(sc: &Scenario, split: Option<&UserSplit>) -> Vec<String> {
    let (users, workers) = (sc.clients.users, sc.system.workers);
    let Some(split) = split.filter(|_| workers > 1 && sc.clients.kind == ClientKind::Closed) else {
        return Vec::new();
    };
    if split.users.is_empty() {
        return vec![format!(
            "no response named the worker that answered it ({PID_HEADER}): how the {users} users fell \
             on the {workers} workers is unknown"
        )];
    }
    let mut out = vec![format!("users per worker, by {PID_HEADER} (pid: users): {}", split.label())];
    if split.unknown > 0 {
        out.push(format!(
            "{} of {users} users got no response naming its worker ({PID_HEADER}): the split is incomplete",
            split.unknown
        ));
    }
    if split.users.len() > workers as usize {
        out.push(format!(
            "{} processes answered for system.workers = {workers}: a worker was replaced during the \
             run, or the service runs more workers than it was told",
            split.users.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn rec(pid: Option<u32>, status: u16) -> RequestRecord {
        RequestRecord {
            index: 0,
            intended_us: 0,
            sent_us: Some(0),
            done_us: 1,
            status: Some(status),
            error: crate::load::ErrorKind::of_status(status),
            body: None,
            server_timing: None,
            worker_pid: pid,
        }
    }

    #[test]
    fn each_process_gets_the_users_counted_at_it_and_the_replies_it_sent() {
        // uvicorn --workers 2: the supervisor (10), the workers (11, 12), a resource tracker (13).
        let rss = [(10, 25_000), (11, 63_000), (12, 63_000), (13, 12_000)];
        let records =
            [rec(Some(11), 200), rec(Some(11), 200), rec(Some(12), 200), rec(Some(12), 503), rec(None, 200)];
        let split = UserSplit { users: BTreeMap::from([(11, 3), (12, 1)]), unknown: 0 };
        let got: Vec<(u32, u64, u64, u64)> = reports(&rss, &records, Some(&split))
            .iter()
            .map(|w| (w.pid, w.rss_kb, w.completed, w.connections))
            .collect();
        assert_eq!(got, [(10, 25_000, 0, 0), (11, 63_000, 2, 3), (12, 63_000, 1, 1), (13, 12_000, 0, 0)]);
        // A running service (no group known): the processes are those that answered.
        let got: Vec<(u32, u64)> =
            reports(&[], &records, Some(&split)).iter().map(|w| (w.pid, w.connections)).collect();
        assert_eq!(got, [(11, 3), (12, 1)]);
        assert!(
            reports(&rss, &[rec(None, 200)], None).iter().all(|w| w.connections == 0 && w.completed == 0)
        );
    }

    #[test]
    fn a_split_unknown_or_incomplete_is_said() {
        let sc = |toml: &str| Scenario::parse(toml, Path::new("t"), Path::new("."), &[]).unwrap();
        let two = sc("[system]\nworkers = 2\n[clients]\nusers = 4\n");
        let none = UserSplit { users: BTreeMap::new(), unknown: 4 };
        let n = notes(&two, Some(&none));
        assert!(n.len() == 1 && n[0].contains("unknown") && n[0].contains(PID_HEADER), "{n:?}");
        let part = UserSplit { users: BTreeMap::from([(11, 3)]), unknown: 1 };
        let n = notes(&two, Some(&part));
        assert!(n[0].contains("11: 3, ?: 1") && n[1].contains("1 of 4 users"), "{n:?}");
        let three = UserSplit { users: BTreeMap::from([(11, 2), (12, 1), (13, 1)]), unknown: 0 };
        assert!(notes(&two, Some(&three)).iter().any(|n| n.contains("3 processes answered")));
        // One worker, or an open loop: nothing to say.
        assert!(notes(&sc("[clients]\nusers = 4\n"), Some(&none)).is_empty());
        assert!(notes(&two, None).is_empty());
    }
}
