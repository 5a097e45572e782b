//! What the kernel says about a process: CPU time (utime + stime, whole process and per
//! thread, by thread name) and resident memory.

use std::collections::BTreeMap;

use anyhow::Context as _;

/// Clock ticks per second of `/proc/*/stat` times.
pub fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// utime + stime of a `stat` line, in ticks, and the name in parentheses.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    // Fields after ") ": state is field 3, utime field 14, stime field 15.
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// CPU seconds (user + system) of process `pid` so far.
pub fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let (_, ticks) = parse_stat(&stat).context("unparseable /proc/pid/stat")?;
    Ok(ticks as f64 / clock_ticks())
}

/// CPU seconds per thread name of process `pid` (threads of the same name are summed, e.g. the
/// tokio runtime's workers).
pub fn thread_cpu_seconds(pid: u32) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    let hz = clock_ticks();
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((name, ticks)) = parse_stat(&stat) {
            *out.entry(name).or_insert(0.0) += ticks as f64 / hz;
        }
    }
    out
}

/// Scheduler accounting of one thread, summed per name: time on a CPU, time runnable but
/// waiting for a CPU (run-queue delay), and how many times it was scheduled in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sched {
    pub cpu_s: f64,
    pub wait_s: f64,
    pub runs: u64,
}

impl Sched {
    /// `self - earlier`.
    pub fn since(&self, earlier: &Sched) -> Sched {
        Sched {
            cpu_s: self.cpu_s - earlier.cpu_s,
            wait_s: self.wait_s - earlier.wait_s,
            runs: self.runs.saturating_sub(earlier.runs),
        }
    }
}

fn parse_schedstat(text: &str) -> Option<Sched> {
    let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some(Sched {
        cpu_s: it.next()?? as f64 / 1e9,
        wait_s: it.next()?? as f64 / 1e9,
        runs: it.next()??,
    })
}

/// `/proc/<pid>/task/*/schedstat` per thread name (threads of one name summed). Empty when
/// the kernel keeps no schedstats.
pub fn thread_sched(pid: u32) -> BTreeMap<String, Sched> {
    let mut out: BTreeMap<String, Sched> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let (Ok(comm), Ok(text)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("schedstat")),
        ) else {
            continue;
        };
        if let Some(s) = parse_schedstat(&text) {
            let e = out.entry(comm.trim().to_owned()).or_default();
            e.cpu_s += s.cpu_s;
            e.wait_s += s.wait_s;
            e.runs += s.runs;
        }
    }
    out
}

/// Scheduler accounting of the calling thread.
pub fn this_thread_sched() -> Sched {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|t| parse_schedstat(&t))
        .unwrap_or_default()
}

/// CPU seconds of the kernel's `ksoftirqd/*` threads: network delivery the kernel could not do
/// inline in the sender's system call is done there, and charged to no process of ours.
pub fn ksoftirqd_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let hz = clock_ticks();
    let mut total = 0.0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((comm, ticks)) = parse_stat(&stat)
            && comm.starts_with("ksoftirqd")
        {
            total += ticks as f64 / hz;
        }
    }
    total
}

/// Resident set size of process `pid`, bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/pid/status")?;
    Ok(kb * 1024)
}

/// CPU seconds of the calling thread (CLOCK_THREAD_CPUTIME_ID, nanosecond resolution).
pub fn this_thread_cpu_seconds() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_may_hold_spaces_and_parens() {
        let line = "42 (sfu worker) 0) S 1 2 3 4 5 6 7 8 9 10 70 30 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some(("sfu worker) 0".to_owned(), 100)));
    }

    #[test]
    fn schedstat_is_three_numbers() {
        let s = parse_schedstat("2000000000 500000000 42\n");
        assert!(s.is_some_and(|s| {
            (s.cpu_s - 2.0).abs() < 1e-9 && (s.wait_s - 0.5).abs() < 1e-9 && s.runs == 42
        }));
    }
}
