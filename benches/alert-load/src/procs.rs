//! Processes: the run's children and what the kernel says about processes.
//!
//! Every process a run starts (hubs, Redis, ceiling servers, client workers) is registered in
//! one [`Fleet`] that kills and reaps them at the end, on error and on Ctrl-C (`kill_on_drop`
//! as the last resort), servers before clients so the servers close the connections (the
//! clients' ports do not linger in TIME_WAIT). A [`Group`] is a set of children speaking the
//! line protocol of `proto`. Then `/proc` readings: CPU seconds (utime + stime) and resident
//! memory of a pid, the machine's busy share, and the one clock every process of a run shares
//! (`CLOCK_MONOTONIC`, so a worker's delivery stamp and the parent's publish stamp compare).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::proto::{self, Report};

/// A started child's pid and the pipes the caller asked for.
#[derive(Debug)]
pub struct Spawned {
    pub pid: u32,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
}

/// Every child of the run.
#[derive(Debug, Default)]
pub struct Fleet {
    children: Vec<(String, Child)>,
}

impl Fleet {
    /// Starts `command` (its stdio as the caller set it) and keeps it for [`Fleet::stop`].
    pub fn spawn(&mut self, name: &str, command: &mut Command) -> anyhow::Result<Spawned> {
        let mut child = command
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child.id().context("child without pid")?;
        let spawned = Spawned {
            pid,
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
        };
        self.children.push((name.to_owned(), child));
        Ok(spawned)
    }

    /// Kills and reaps the children whose pid is in `pids`.
    pub async fn stop(&mut self, pids: &[u32]) {
        let mut kept = Vec::with_capacity(self.children.len());
        for (name, mut child) in std::mem::take(&mut self.children) {
            if child.id().is_some_and(|p| pids.contains(&p)) {
                let _ = child.start_kill();
                reap(&name, &mut child).await;
            } else {
                kept.push((name, child));
            }
        }
        self.children = kept;
    }

    /// Kills and reaps everything left, servers (not named `worker`) first.
    pub async fn stop_all(&mut self) {
        let servers: Vec<u32> = self
            .children
            .iter()
            .filter(|(name, _)| !name.starts_with("worker"))
            .filter_map(|(_, c)| c.id())
            .collect();
        self.stop(&servers).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (name, mut child) in std::mem::take(&mut self.children) {
            let _ = child.start_kill();
            reap(&name, &mut child).await;
        }
    }
}

async fn reap(name: &str, child: &mut Child) {
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        eprintln!("alert-load: {name} did not exit within 5 s of SIGKILL");
    }
}

/// The command that re-runs this binary as a child: `alert-load <role> <args…>`, stdin and
/// stdout piped, stderr inherited.
pub fn this_binary(role: &str, args: &[String]) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("path of this binary")?;
    let mut command = Command::new(exe);
    command
        .arg(role)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    Ok(command)
}

/// Children speaking the line protocol: commands to each one's stdin, reports from all of them
/// on one channel, tagged with the child's index.
#[derive(Debug)]
pub struct Group {
    pub pids: Vec<u32>,
    stdins: Vec<Option<ChildStdin>>,
    tx: mpsc::UnboundedSender<(usize, Report)>,
    rx: mpsc::UnboundedReceiver<(usize, Report)>,
}

impl Default for Group {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Group {
            pids: Vec::new(),
            stdins: Vec::new(),
            tx,
            rx,
        }
    }
}

impl Group {
    /// Starts one member; returns its index.
    pub fn spawn(
        &mut self,
        fleet: &mut Fleet,
        name: &str,
        mut command: Command,
    ) -> anyhow::Result<usize> {
        let spawned = fleet.spawn(name, &mut command)?;
        let index = self.pids.len();
        let stdout = spawned.stdout.context("child without stdout pipe")?;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send((index, Report::parse(&line))).is_err() {
                    break;
                }
            }
        });
        self.pids.push(spawned.pid);
        self.stdins.push(spawned.stdin);
        Ok(index)
    }

    /// Members.
    pub fn len(&self) -> usize {
        self.pids.len()
    }

    /// Sends `command` to member `index`.
    pub async fn send(&mut self, index: usize, command: proto::Command) -> anyhow::Result<()> {
        let stdin = self
            .stdins
            .get_mut(index)
            .and_then(Option::as_mut)
            .with_context(|| format!("child {index} has no stdin"))?;
        stdin.write_all(command.line().as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    /// The next report, or `None` once `deadline` passed.
    pub async fn next(&mut self, deadline: Instant) -> Option<(usize, Report)> {
        tokio::time::timeout_at(deadline, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for one `listening ADDR` from each member, in member order.
    pub async fn listening(
        &mut self,
        within: Duration,
    ) -> anyhow::Result<Vec<std::net::SocketAddr>> {
        let deadline = Instant::now() + within;
        let mut addrs = vec![None; self.len()];
        while addrs.iter().any(Option::is_none) {
            match self.next(deadline).await {
                Some((i, Report::Listening(addr))) => {
                    if let Some(slot) = addrs.get_mut(i) {
                        *slot = Some(addr);
                    }
                }
                Some((i, other)) => eprintln!("alert-load: child {i}: {}", other.line()),
                None => bail!("children did not report their listeners within {within:?}"),
            }
        }
        Ok(addrs.into_iter().flatten().collect())
    }
}

/// Nanoseconds of `CLOCK_MONOTONIC`: the same clock in every process on the machine.
pub fn mono_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
        let nanos = u64::try_from(t.tv_nsec()).unwrap_or(0);
        secs * 1_000_000_000 + nanos
    })
}

/// Clock ticks per second of `/proc/*/stat` times.
fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// utime + stime of a `/proc/<pid>/stat` line, in ticks. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn stat_ticks(stat: &str) -> Option<u64> {
    let close = stat.rfind(')')?;
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After ") ": state is field 3, utime field 14, stime field 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds (user + system) of process `pid` so far.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks = stat_ticks(&stat).context("unparseable /proc/<pid>/stat")?;
    Ok(ticks as f64 / clock_ticks())
}

/// Sum of [`cpu_seconds`] over `pids`.
pub fn cpu_seconds_all(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter().map(|&p| cpu_seconds(p)).sum()
}

/// The `VmRSS` of a `/proc/<pid>/status` text, bytes.
fn status_rss(status: &str) -> Option<u64> {
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(kb * 1024)
}

/// Resident set size of process `pid`, bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status_rss(&status).context("no VmRSS in /proc/<pid>/status")
}

/// Sum of [`rss_bytes`] over `pids`.
pub fn rss_bytes_all(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|&p| rss_bytes(p)).sum()
}

/// Share of all cores busy between two [`benchkit::machine_jiffies`] readings.
pub fn busy_share(before: (u64, u64), after: (u64, u64)) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1) as f64;
    if total > 0.0 { busy / total } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_may_hold_spaces_and_parens() {
        let line = "42 (tokio (rt) 1) S 1 2 3 4 5 6 7 8 9 10 70 30 0 0 20 0 1 0";
        assert_eq!(stat_ticks(line), Some(100));
    }

    #[test]
    fn rss_is_read_in_kib() {
        let status = "Name:\thubcast\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(status_rss(status), Some(1234 * 1024));
        assert_eq!(status_rss("Name:\tx\n"), None);
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = mono_ns();
        let b = mono_ns();
        assert!(a > 0 && b >= a);
    }
}
