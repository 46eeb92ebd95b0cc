//! CPU pinning of the load generator's threads, so that on a small machine the server and
//! the generator do not share cores (Linux `sched_setaffinity`).

use super::LoadError;

/// Checks that `cpus` is a non-empty list of CPUs this process may run on.
pub fn validate(cpus: &[usize]) -> Result<(), LoadError> {
    if cpus.is_empty() {
        return Err(LoadError::flag("--cpus", "is empty; list CPUs like 2,3 or 2-3"));
    }
    let allowed = allowed_cpus()?;
    match cpus.iter().find(|c| !allowed.contains(c)) {
        Some(c) => Err(LoadError::flag(
            "--cpus",
            format!("lists CPU {c}, which this process may not use (allowed: {})", format_cpus(&allowed)),
        )),
        None => Ok(()),
    }
}

/// `0-3,6` style list.
pub fn format_cpus(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    out.join(",")
}

#[cfg(target_os = "linux")]
mod os {
    use super::LoadError;
    use std::io;

    fn setsize() -> usize {
        libc::CPU_SETSIZE as usize
    }

    /// The CPUs the calling thread may run on, ascending.
    pub fn allowed_cpus() -> Result<Vec<usize>, LoadError> {
        // SAFETY: cpu_set_t is plain bits; the kernel writes at most its size.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return Err(LoadError::Pin { cpus: vec![], source: io::Error::last_os_error() });
        }
        // SAFETY: every index is below CPU_SETSIZE.
        Ok((0..setsize()).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
    }

    /// Pins the calling thread to `cpus` (each checked against CPU_SETSIZE).
    pub fn pin_current_thread(cpus: &[usize]) -> Result<(), LoadError> {
        let err = |source| LoadError::Pin { cpus: cpus.to_vec(), source };
        if let Some(c) = cpus.iter().find(|&&c| c >= setsize()) {
            return Err(err(io::Error::other(format!("CPU {c} is beyond CPU_SETSIZE"))));
        }
        // SAFETY: zeroed is a valid empty set; indices are checked above.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &c in cpus {
            unsafe { libc::CPU_SET(c, &mut set) };
        }
        let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
        if rc != 0 {
            return Err(err(io::Error::last_os_error()));
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use super::LoadError;

    pub fn allowed_cpus() -> Result<Vec<usize>, LoadError> {
        Err(LoadError::flag("--cpus", "is only supported on Linux; drop it"))
    }

    pub fn pin_current_thread(_cpus: &[usize]) -> Result<(), LoadError> {
        allowed_cpus().map(drop)
    }
}

pub use os::{allowed_cpus, pin_current_thread};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_ranges() {
        let cases: [(&[usize], &str); 4] =
            [(&[], ""), (&[3], "3"), (&[0, 1, 2, 3], "0-3"), (&[0, 1, 4, 6, 7], "0-1,4,6-7")];
        for (cpus, want) in cases {
            assert_eq!(format_cpus(cpus), want);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn rejects_unavailable_cpus() {
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        validate(&allowed[..1]).unwrap();
        let err = validate(&[100_000]).unwrap_err().to_string();
        assert!(err.starts_with("--cpus") && err.contains("100000"), "{err}");
    }
}
