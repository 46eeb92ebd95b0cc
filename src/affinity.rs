//! CPU affinity: lists of CPUs like `0-3,6`, and which of them a thread may run on.
//!
//! One [`CpuList`] serves every `--cpus` flag (`servesim serve`, `servesim load`) and the
//! measurement's split of the machine between the server and the load generator
//! ([`CpuPlan`]). A list parses from and prints as the Linux `cpuset` notation: indices and
//! inclusive ranges separated by commas, sorted and without duplicates once parsed.
//!
//! `sched_setaffinity` applies to the calling thread and is inherited by the threads and
//! processes it creates afterwards, so a process that wants all of its threads on some
//! CPUs pins itself first thing, before it starts a runtime, a threadpool or children.
//! Pinning works on Linux only; elsewhere [`allowed`] and [`pin`] fail with
//! [`AffinityError::Unsupported`].

use std::fmt;

/// Every CPU index must be below this: the size of the kernel's `cpu_set_t` in bits (glibc's
/// `CPU_SETSIZE`), the most CPUs `sched_setaffinity` can name.
pub const MAX_CPUS: usize = 1024;

#[cfg(target_os = "linux")]
const _: () = assert!(MAX_CPUS == libc::CPU_SETSIZE as usize);

/// Why a CPU list is unusable or cannot be applied.
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
    /// The list names CPUs this process may not use, or none at all.
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
    /// This operating system has no `sched_setaffinity`.
    #[error("CPU pinning is only supported on Linux; leave the CPUs unset")]
    Unsupported,
}

/// A list of CPU indices, printed as `0-3,6`.
///
/// Parsed lists are sorted, without duplicates, and every index is below [`MAX_CPUS`].
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct CpuList(pub Vec<usize>);

impl CpuList {
    /// Whether the list names no CPU.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `cpu` is in the list.
    pub fn contains(&self, cpu: usize) -> bool {
        self.0.contains(&cpu)
    }
}

impl fmt::Display for CpuList {
    /// Runs of consecutive indices as ranges: `[0, 1, 2, 3, 6]` prints as `0-3,6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.0;
        let mut i = 0;
        while i < v.len() {
            let mut j = i;
            while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
                j += 1;
            }
            if i > 0 {
                f.write_str(",")?;
            }
            if j == i {
                write!(f, "{}", v[i])?;
            } else {
                write!(f, "{}-{}", v[i], v[j])?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

impl std::str::FromStr for CpuList {
    type Err = AffinityError;

    /// Parses `0`, `0,2`, `0-3,6` (spaces around items are ignored).
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| AffinityError::Parse { list: list.into(), reason };
        let mut cpus = Vec::new();
        for part in list.split(',') {
            match part.split_once('-') {
                Some((a, b)) if a.trim().is_empty() || b.trim().is_empty() => {
                    return Err(err(format!("range `{}` needs a CPU on each side of `-`", part.trim())));
                }
                Some((a, b)) => {
                    let (a, b) = (index(a).map_err(err)?, index(b).map_err(err)?);
                    if a > b {
                        return Err(err(format!(
                            "range {a}-{b} is empty; write the lower CPU first, {b}-{a}"
                        )));
                    }
                    cpus.extend(a..=b);
                }
                None => cpus.push(index(part).map_err(err)?),
            }
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList(cpus))
    }
}

/// One CPU index of a list, below [`MAX_CPUS`].
fn index(text: &str) -> Result<usize, String> {
    let text = text.trim();
    match text.parse::<usize>() {
        _ if text.is_empty() => Err("an item is empty".into()),
        Ok(c) if c < MAX_CPUS => Ok(c),
        Ok(c) => Err(format!("CPU {c} is out of range; indices must be < {MAX_CPUS}")),
        Err(_) => Err(format!("`{text}` is not a CPU index")),
    }
}

/// The CPUs the calling thread may run on (`sched_getaffinity`).
pub fn allowed() -> Result<CpuList, AffinityError> {
    sys::get()
}

/// One allowed CPU, the last: where the probes that put two threads on one CPU (the time
/// slice, a hand-off's CPU) pin them, so that they time the same CPU.
pub fn one_cpu() -> Result<CpuList, AffinityError> {
    Ok(CpuList(vec![allowed()?.0.last().copied().unwrap_or(0)]))
}

/// Pins the calling thread (and every thread and process it creates later) to `cpus`
/// (`sched_setaffinity`), which must be non-empty and all allowed.
pub fn pin(cpus: &CpuList) -> Result<(), AffinityError> {
    let ok = allowed()?;
    if cpus.is_empty() || cpus.0.iter().any(|&c| !ok.contains(c)) {
        return Err(AffinityError::Unavailable { asked: cpus.0.clone(), allowed: ok });
    }
    sys::set(cpus)
}

#[cfg(target_os = "linux")]
mod sys {
    use super::{AffinityError, CpuList, MAX_CPUS};

    fn sys_error(call: &'static str) -> AffinityError {
        AffinityError::Sys { call, source: std::io::Error::last_os_error() }
    }

    pub fn get() -> Result<CpuList, AffinityError> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the size passed is its size.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return Err(sys_error("get"));
        }
        // SAFETY: every index is below CPU_SETSIZE.
        Ok(CpuList((0..MAX_CPUS).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()))
    }

    /// Callers check that every index is allowed, hence below `MAX_CPUS`.
    pub fn set(cpus: &CpuList) -> Result<(), AffinityError> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; indices are below CPU_SETSIZE.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &c in &cpus.0 {
            unsafe { libc::CPU_SET(c, &mut set) };
        }
        let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
        if rc != 0 {
            return Err(sys_error("set"));
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use super::{AffinityError, CpuList};

    pub fn get() -> Result<CpuList, AffinityError> {
        Err(AffinityError::Unsupported)
    }

    pub fn set(_cpus: &CpuList) -> Result<(), AffinityError> {
        Err(AffinityError::Unsupported)
    }
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
    fn valid_lists_parse_sorted_and_print_as_ranges() {
        for (text, cpus, shown) in [
            ("0", vec![0], "0"),
            ("3,1", vec![1, 3], "1,3"),
            ("2,3", vec![2, 3], "2-3"),
            ("0-3,6", vec![0, 1, 2, 3, 6], "0-3,6"),
            ("2-2, 1", vec![1, 2], "1-2"),
            ("0-2,1,5", vec![0, 1, 2, 5], "0-2,5"),
            ("4,4,4", vec![4], "4"),
            ("0-1,4,6-7", vec![0, 1, 4, 6, 7], "0-1,4,6-7"),
            (" 7 ", vec![7], "7"),
            ("1023", vec![MAX_CPUS - 1], "1023"),
        ] {
            let list: CpuList = text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(list.0, cpus, "{text:?}");
            assert_eq!(list.to_string(), shown, "{text:?}");
        }
    }

    #[test]
    fn printing_then_parsing_gives_the_list_back() {
        for cpus in [vec![], vec![0], vec![0, 2, 4], vec![1, 2, 3, 9, 10]] {
            let list = CpuList(cpus);
            let text = list.to_string();
            if !list.is_empty() {
                assert_eq!(text.parse::<CpuList>().unwrap(), list, "{text}");
            }
        }
        assert_eq!(CpuList::default().to_string(), "");
    }

    #[test]
    fn bad_lists_fail_with_the_reason_and_an_example() {
        for (text, reason) in [
            ("", "an item is empty"),
            ("1,,2", "an item is empty"),
            ("a", "`a` is not a CPU index"),
            ("-1", "range `-1` needs a CPU on each side of `-`"),
            ("2-", "range `2-` needs a CPU on each side of `-`"),
            ("1-x", "`x` is not a CPU index"),
            ("3-1", "range 3-1 is empty; write the lower CPU first, 1-3"),
            ("1024", "CPU 1024 is out of range; indices must be < 1024"),
            ("0-100000", "CPU 100000 is out of range"),
            ("99999", "CPU 99999 is out of range"),
        ] {
            let err = text.parse::<CpuList>().unwrap_err().to_string();
            assert!(err.starts_with(&format!("CPU list `{text}`: ")), "{text:?}: {err}");
            assert!(err.contains(reason), "{text:?}: {err}");
            assert!(err.ends_with("(expected e.g. `0`, `0,2` or `0-3`)"), "{text:?}: {err}");
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

    #[cfg(target_os = "linux")]
    #[test]
    fn pinning_to_the_allowed_set_works_and_to_others_fails() {
        let ok = allowed().unwrap();
        assert!(!ok.is_empty());
        // Pin a scratch thread, not the test harness's.
        let first = ok.0[0];
        std::thread::spawn(move || {
            pin(&CpuList(vec![first])).unwrap();
            assert_eq!(allowed().unwrap().0, vec![first]);
        })
        .join()
        .unwrap();
        for bad in [vec![], vec![1000], vec![1 << 20]] {
            assert!(matches!(pin(&CpuList(bad.clone())), Err(AffinityError::Unavailable { .. })), "{bad:?}");
        }
    }
}
