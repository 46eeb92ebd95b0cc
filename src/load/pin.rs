//! CPU pinning of the load generator's threads, so that on a small machine the server and
//! the generator do not share cores (Linux `sched_setaffinity`, through [`crate::affinity`]).

use super::LoadError;
use crate::affinity::{self, CpuList};

/// Checks that `cpus` is a non-empty list of CPUs this process may run on.
pub fn validate(cpus: &CpuList) -> Result<(), LoadError> {
    if cpus.is_empty() {
        return Err(LoadError::flag("--cpus", "is empty; list CPUs like 2,3 or 2-3"));
    }
    let allowed = affinity::allowed().map_err(|source| LoadError::Pin { cpus: vec![], source })?;
    match cpus.0.iter().find(|&&c| !allowed.contains(c)) {
        Some(c) => Err(LoadError::flag(
            "--cpus",
            format!("lists CPU {c}, which this process may not use (allowed: {allowed})"),
        )),
        None => Ok(()),
    }
}

/// Pins the calling thread to `cpus`, which must all be allowed.
pub fn pin_current_thread(cpus: &CpuList) -> Result<(), LoadError> {
    affinity::pin(cpus).map_err(|source| LoadError::Pin { cpus: cpus.0.clone(), source })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_and_unavailable_cpus() {
        let allowed = affinity::allowed().unwrap();
        validate(&CpuList(allowed.0[..1].to_vec())).unwrap();
        let err = validate(&CpuList(vec![100_000])).unwrap_err().to_string();
        assert!(err.starts_with("--cpus") && err.contains("100000"), "{err}");
        let err = validate(&CpuList::default()).unwrap_err().to_string();
        assert!(err.starts_with("--cpus is empty"), "{err}");
    }
}
