//! Figures about a process from `/proc`: resident memory and CPU time.

use std::path::PathBuf;

fn proc_file(pid: u32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{name}"))
}

/// Resident set size of process `pid` (kB) (`VmRSS` in `/proc/PID/status`), if it exists.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(proc_file(pid, "status")).ok()?;
    parse_rss_kb(&text)
}

fn parse_rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of process `pid` so far, all its threads (ms)
/// (`utime` + `stime` of `/proc/PID/stat`), if it exists.
pub fn cpu_ms(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(proc_file(pid, "stat")).ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    parse_cpu_ticks(&text).map(|t| t as f64 * 1e3 / ticks.max(1) as f64)
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces: fields resume after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        assert_eq!(parse_rss_kb("Name:\tx\nVmRSS:\t   1234 kB\nVmSwap: 0 kB\n"), Some(1234));
        assert_eq!(parse_rss_kb("Name:\tx\n"), None);
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(10));
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let me = std::process::id();
        assert!(rss_kb(me).unwrap() > 0);
        assert!(cpu_ms(me).is_some());
        assert_eq!(rss_kb(u32::MAX), None);
    }
}
