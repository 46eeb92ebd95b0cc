//! CPU affinity: which CPUs the server's processes (and the load generator) may run on.
//!
//! `sched_setaffinity` applies to the calling thread and is inherited by the threads and
//! processes it creates afterwards, so the server pins itself first thing, before it starts
//! its runtime, its threadpool or its worker processes.

use std::fmt;

/// Why a CPU list is unusable.
#[derive(Debug, thiserror::Error)]
pub enum AffinityError {
    /// The list does not parse.
    #[error("CPU list `{list}`: {reason} (expected e.g. `0`, `0,2` or `0-3`)")]
    Parse {
        /// The list as given.
        list: String,
        /// What is wrong.
        reason: String,
    },
    /// The list names CPUs this process may not use.
    #[error("CPUs {asked:?} are not all available; this process may use {allowed}")]
    Unavailable {
        /// The CPUs asked for.
        asked: Vec<usize>,
        /// The CPUs allowed.
        allowed: CpuList,
    },
    /// The system call failed.
    #[error("sched_{call}affinity: {source}")]
    Sys {
        /// `get` or `set`.
        call: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A sorted list of distinct CPU indices, printed as `0-3,6`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct CpuList(pub Vec<usize>);

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut i = 0;
        let v = &self.0;
        while i < v.len() {
            let mut j = i;
            while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
                j += 1;
            }
            parts.push(if j == i { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
            i = j + 1;
        }
        f.write_str(&parts.join(","))
    }
}

impl std::str::FromStr for CpuList {
    type Err = AffinityError;

    /// Parses `0`, `0,2`, `0-3,6`.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| AffinityError::Parse { list: list.into(), reason: reason.into() };
        let num = |s: &str| {
            s.trim().parse::<usize>().map_err(|_| err(&format!("`{}` is not a CPU index", s.trim())))
        };
        let mut cpus = Vec::new();
        for part in list.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b {
                        return Err(err(&format!("range {a}-{b} is empty")));
                    }
                    cpus.extend(a..=b);
                }
                None => cpus.push(num(part)?),
            }
        }
        if cpus.iter().any(|&c| c >= libc::CPU_SETSIZE as usize) {
            return Err(err(&format!("CPU indices must be < {}", libc::CPU_SETSIZE)));
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList(cpus))
    }
}

/// The CPUs the calling thread may run on.
pub fn allowed() -> Result<CpuList, AffinityError> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the size passed is its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(AffinityError::Sys { call: "get", source: std::io::Error::last_os_error() });
    }
    let n = libc::CPU_SETSIZE as usize;
    // SAFETY: every index is below CPU_SETSIZE.
    Ok(CpuList((0..n).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()))
}

/// Pins the calling thread (and every thread and process it creates later) to `cpus`,
/// which must all be allowed.
pub fn pin(cpus: &CpuList) -> Result<(), AffinityError> {
    let ok = allowed()?;
    if cpus.0.is_empty() || cpus.0.iter().any(|c| !ok.0.contains(c)) {
        return Err(AffinityError::Unavailable { asked: cpus.0.clone(), allowed: ok });
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; indices were checked above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in &cpus.0 {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(AffinityError::Sys { call: "set", source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// How a measurement splits the allowed CPUs between the server and the load generator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CpuPlan {
    /// The server's CPUs: the first `system.cores` allowed ones (all of them when fewer).
    pub server: CpuList,
    /// The load generator's CPUs: the rest, or all allowed CPUs when none are left.
    pub load: CpuList,
    /// Whether the server and the load generator share CPUs.
    pub shared: bool,
}

impl CpuPlan {
    /// Splits `allowed` for a server that wants `cores` CPUs.
    pub fn split(allowed: &CpuList, cores: usize) -> CpuPlan {
        let n = cores.clamp(1, allowed.0.len().max(1));
        let server = CpuList(allowed.0.iter().copied().take(n).collect());
        let rest: Vec<usize> = allowed.0.iter().copied().skip(n).collect();
        if rest.is_empty() {
            CpuPlan { server, load: allowed.clone(), shared: true }
        } else {
            CpuPlan { server, load: CpuList(rest), shared: false }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_print() {
        for (text, cpus, shown) in [
            ("0", vec![0], "0"),
            ("3,1", vec![1, 3], "1,3"),
            ("0-3,6", vec![0, 1, 2, 3, 6], "0-3,6"),
            ("2-2, 1", vec![1, 2], "1-2"),
        ] {
            let l: CpuList = text.parse().unwrap();
            assert_eq!(l.0, cpus, "{text}");
            assert_eq!(l.to_string(), shown);
        }
        for bad in ["", "a", "3-1", "1,,2", "99999"] {
            assert!(bad.parse::<CpuList>().is_err(), "{bad}");
        }
    }

    #[test]
    fn plans_give_the_server_its_cores_and_the_load_the_rest() {
        let four = CpuList(vec![0, 1, 2, 3]);
        let p = CpuPlan::split(&four, 1);
        assert_eq!((p.server.0, p.load.0, p.shared), (vec![0], vec![1, 2, 3], false));
        let p = CpuPlan::split(&four, 4);
        assert_eq!((p.server.0.len(), p.load.0.len(), p.shared), (4, 4, true));
        let p = CpuPlan::split(&CpuList(vec![0, 1]), 8);
        assert_eq!((p.server.0, p.shared), (vec![0, 1], true));
    }

    #[test]
    fn pinning_to_the_allowed_set_works_and_to_others_fails() {
        let ok = allowed().unwrap();
        assert!(!ok.0.is_empty());
        // Pin a scratch thread, not the test harness's.
        let ok2 = ok.clone();
        std::thread::spawn(move || {
            pin(&CpuList(vec![ok2.0[0]])).unwrap();
            assert_eq!(allowed().unwrap().0, vec![ok2.0[0]]);
        })
        .join()
        .unwrap();
        assert!(matches!(pin(&CpuList(vec![1000])), Err(AffinityError::Unavailable { .. })));
    }
}
