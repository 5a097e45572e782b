//! One measured phase, the same for the ceiling and for hubcast: given running servers, start
//! the client workers, wait until every subscriber is connected, take the servers' RSS idle,
//! then fire broadcasts one at a time and wait until every live subscriber has each (or the
//! timeout), with the servers' and clients' CPU read around the whole series.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

use crate::hub;
use crate::procs::{self, Fleet, Group, this_binary};
use crate::proto::{Command, Report, Tally};

/// How the clients are laid out and how long anything may take.
#[derive(Debug, Clone)]
pub struct Layout {
    pub subscribers: usize,
    pub workers: usize,
    /// Fourth octet of the first worker's source address (127.0.0.X).
    pub first_source: u8,
    pub broadcasts: usize,
    pub warmup: usize,
    pub frame_bytes: usize,
    pub concurrency: usize,
    pub read_buffer: usize,
    /// Subscribe over SSE (`/sse/alerts`) instead of WebSocket.
    pub sse: bool,
    pub connect_timeout: Duration,
    pub broadcast_timeout: Duration,
    pub gap: Duration,
    pub settle: Duration,
}

/// How a phase fires a broadcast.
#[derive(Debug)]
pub enum Trigger {
    /// Ceiling servers: members `0..servers` of the phase's group get `b SEQ`; with a
    /// `path`, the workers subscribe over WebSocket to it (the WebSocket ceiling).
    Ceiling {
        servers: usize,
        path: Option<&'static str>,
    },
    /// hubcast: one publish to this hub.
    Publish { addr: SocketAddr, token: String },
}

/// The servers of a phase.
#[derive(Debug)]
pub struct Servers {
    pub pids: Vec<u32>,
    pub addrs: Vec<SocketAddr>,
    /// Other server-side processes (Redis), measured apart.
    pub extra_pids: Vec<u32>,
    /// Ceiling servers are members of it; workers join it.
    pub group: Group,
    pub trigger: Trigger,
}

/// One broadcast; times in ns from the moment it was fired.
#[derive(Debug, Clone, Copy, Default)]
pub struct Broadcast {
    pub expected: usize,
    pub delivered: usize,
    pub first_ns: u64,
    pub last_ns: u64,
    /// hubcast: the publish answer; ceiling: the last server's write loop ended.
    pub ack_ns: Option<u64>,
    pub complete: bool,
    pub bytes: usize,
}

/// What a phase measured.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    /// Whether there were other server-side processes (Redis).
    pub has_extra: bool,
    pub connected: usize,
    pub failed: usize,
    pub closed: usize,
    pub connect_s: f64,
    pub rss_base: u64,
    pub rss_idle: u64,
    pub rss_after: u64,
    pub broadcasts: Vec<Broadcast>,
    pub server_cpu_s: f64,
    pub extra_cpu_s: f64,
    pub client_cpu_s: f64,
    pub window_s: f64,
    pub busy: f64,
}

/// Connections per (worker, server): subscriber j belongs to worker j / share and server
/// j mod servers.
pub fn split(subscribers: usize, workers: usize, servers: usize) -> Vec<Vec<usize>> {
    let (workers, servers) = (workers.max(1), servers.max(1));
    let mut counts = vec![vec![0; servers]; workers];
    let share = subscribers.div_ceil(workers).max(1);
    for j in 0..subscribers {
        if let Some(row) = counts.get_mut(j / share)
            && let Some(cell) = row.get_mut(j % servers)
        {
            *cell += 1;
        }
    }
    counts
}

/// Runs the phase; the caller then stops the servers (before the workers).
pub async fn run(
    fleet: &mut Fleet,
    layout: &Layout,
    servers: &mut Servers,
    label: &str,
) -> anyhow::Result<Phase> {
    let mut phase = Phase {
        rss_base: procs::rss_bytes_all(&servers.pids)?,
        has_extra: !servers.extra_pids.is_empty(),
        ..Phase::default()
    };
    let offset = servers.group.len();
    let counts = split(layout.subscribers, layout.workers, servers.addrs.len());
    for (w, row) in counts.iter().enumerate() {
        let octet = usize::from(layout.first_source) + w;
        let Ok(octet) = u8::try_from(octet) else {
            bail!("too many workers for 127.0.0.x source addresses");
        };
        let mut args = vec![
            "--source".to_owned(),
            Ipv4Addr::new(127, 0, 0, octet).to_string(),
            "--frame-bytes".to_owned(),
            layout.frame_bytes.to_string(),
            "--concurrency".to_owned(),
            layout.concurrency.to_string(),
            "--read-buffer".to_owned(),
            layout.read_buffer.to_string(),
        ];
        let path = match servers.trigger {
            Trigger::Publish { .. } => Some(hub::subscribe_path(layout.sse)),
            Trigger::Ceiling { path, .. } => path,
        };
        if let Some(path) = path {
            args.extend(["--path".to_owned(), path.to_owned()]);
        }
        for (addr, n) in servers.addrs.iter().zip(row) {
            args.extend(["--target".to_owned(), format!("{addr}={n}")]);
        }
        let command = this_binary("worker", &args)?;
        servers
            .group
            .spawn(fleet, &format!("worker {w}"), command)?;
    }
    let worker_pids: Vec<u32> = servers.group.pids.get(offset..).unwrap_or(&[]).to_vec();

    // Connect.
    let started = Instant::now();
    let deadline = started + layout.connect_timeout;
    let mut ready = vec![None; layout.workers];
    while ready.iter().any(Option::is_none) {
        match servers.group.next(deadline).await {
            Some((i, Report::Ready { connected, failed })) if i >= offset => {
                if let Some(slot) = ready.get_mut(i - offset) {
                    *slot = Some((connected, failed));
                }
            }
            Some((i, other)) => note(label, i, &other),
            None => bail!(
                "{label}: subscribers not connected within {:?} ({} of {} workers ready)",
                layout.connect_timeout,
                ready.iter().flatten().count(),
                layout.workers
            ),
        }
    }
    phase.connect_s = started.elapsed().as_secs_f64();
    let per_worker: Vec<usize> = ready.iter().flatten().map(|r| r.0).collect();
    phase.connected = per_worker.iter().sum();
    phase.failed = ready.iter().flatten().map(|r| r.1).sum();
    eprintln!(
        "alert-load: {label}: {} subscribers connected ({} failed) in {:.1} s",
        phase.connected, phase.failed, phase.connect_s
    );
    if phase.connected == 0 {
        bail!("{label}: no subscriber connected");
    }
    tokio::time::sleep(layout.settle).await;
    phase.rss_idle = procs::rss_bytes_all(&servers.pids)?;

    // Broadcasts.
    let mut closed = vec![0usize; layout.workers];
    let mut seq = 0u64;
    let mut window = None;
    for k in 0..layout.warmup + layout.broadcasts {
        if k == layout.warmup {
            window = Some((
                procs::cpu_seconds_all(&servers.pids)?,
                procs::cpu_seconds_all(&servers.extra_pids)?,
                procs::cpu_seconds_all(&worker_pids)?,
                benchkit::machine_jiffies(),
                Instant::now(),
            ));
        }
        let (fired_seq, fired_ns, acked_ns) = match &servers.trigger {
            Trigger::Ceiling { servers: n, .. } => {
                seq += 1;
                let fired_ns = procs::mono_ns();
                for i in 0..*n {
                    servers.group.send(i, Command::Broadcast(seq)).await?;
                }
                (seq, fired_ns, None)
            }
            Trigger::Publish { addr, token } => {
                let id = format!("alert-load-{}-{k}", std::process::id());
                let xml = hub::cap_xml(&format!("{id}-{}", procs::mono_ns()));
                let p = tokio::time::timeout(
                    layout.broadcast_timeout,
                    hub::publish(*addr, token, &xml),
                )
                .await
                .map_err(|_| anyhow::anyhow!("{label}: publish took over the timeout"))??;
                (p.seq, p.sent_ns, Some(p.acked_ns))
            }
        };
        let expected: Vec<usize> = per_worker
            .iter()
            .zip(&closed)
            .map(|(c, d)| c.saturating_sub(*d))
            .collect();
        let mut b = collect(
            &mut servers.group,
            offset,
            fired_seq,
            layout.broadcast_timeout,
            &mut closed,
            label,
        )
        .await?;
        b.expected = expected.iter().sum();
        let rel = |ns: u64| ns.saturating_sub(fired_ns);
        b.first_ns = rel(b.first_ns);
        b.last_ns = rel(b.last_ns);
        b.ack_ns = match (acked_ns, b.ack_ns) {
            (Some(a), _) | (None, Some(a)) => Some(rel(a)),
            (None, None) => None,
        };
        eprintln!(
            "alert-load: {label}: broadcast {}{}: {}/{} delivered; answered / first / last after {} / {:.1} / {:.1} ms",
            k + 1,
            if k < layout.warmup { " (warm-up)" } else { "" },
            b.delivered,
            b.expected,
            b.ack_ns
                .map_or_else(|| "—".to_owned(), |a| format!("{:.1}", a as f64 / 1e6)),
            b.first_ns as f64 / 1e6,
            b.last_ns as f64 / 1e6
        );
        if k >= layout.warmup {
            phase.broadcasts.push(b);
        }
        tokio::time::sleep(layout.gap).await;
    }
    if let Some((server0, extra0, client0, machine0, t0)) = window {
        phase.window_s = t0.elapsed().as_secs_f64();
        phase.server_cpu_s = procs::cpu_seconds_all(&servers.pids)? - server0;
        phase.extra_cpu_s = procs::cpu_seconds_all(&servers.extra_pids)? - extra0;
        phase.client_cpu_s = procs::cpu_seconds_all(&worker_pids)? - client0;
        phase.busy = procs::busy_share(machine0, benchkit::machine_jiffies());
    }
    phase.rss_after = procs::rss_bytes_all(&servers.pids)?;
    phase.closed = closed.iter().sum();
    Ok(phase)
}

/// Reports gathered for one broadcast.
#[derive(Debug)]
struct Gathered<'a> {
    seq: u64,
    offset: usize,
    done: Vec<Option<Tally>>,
    sent: usize,
    ack: Option<u64>,
    closed: &'a mut [usize],
}

impl Gathered<'_> {
    fn waiting(&self) -> bool {
        self.done.iter().any(Option::is_none) || self.sent < self.offset
    }

    /// Takes one report; `Partial` only counts when asked for (`partial`).
    fn absorb(&mut self, i: usize, report: Report, partial: bool, label: &str) {
        let worker = i.checked_sub(self.offset);
        match (report, worker) {
            (Report::Got(t), Some(w)) if t.seq == self.seq => self.put(w, t),
            (Report::Partial(t), Some(w)) if t.seq == self.seq && partial => self.put(w, t),
            // Late reports of an earlier broadcast that timed out.
            (Report::Got(_) | Report::Partial(_), _) => {}
            (Report::Sent { seq, done_ns, .. }, None) => {
                if seq == self.seq {
                    self.sent += 1;
                    self.ack = Some(self.ack.map_or(done_ns, |a| a.max(done_ns)));
                }
            }
            (Report::Closed(n), Some(w)) => {
                if let Some(slot) = self.closed.get_mut(w) {
                    *slot = n;
                }
            }
            (other, _) => note(label, i, &other),
        }
    }

    fn put(&mut self, worker: usize, tally: Tally) {
        if let Some(slot) = self.done.get_mut(worker) {
            *slot = Some(tally);
        }
    }
}

/// Waits until every worker reported `seq` complete (and every ceiling server its write
/// loop), or the timeout; then asks the missing workers how far they got.
async fn collect(
    group: &mut Group,
    offset: usize,
    seq: u64,
    timeout: Duration,
    closed: &mut [usize],
    label: &str,
) -> anyhow::Result<Broadcast> {
    let mut g = Gathered {
        seq,
        offset,
        done: vec![None; closed.len()],
        sent: 0,
        ack: None,
        closed,
    };
    let deadline = Instant::now() + timeout;
    while g.waiting() {
        match group.next(deadline).await {
            Some((i, report)) => g.absorb(i, report, false, label),
            None => break,
        }
    }
    let complete = g.done.iter().all(Option::is_some);
    if !complete {
        for (w, slot) in g.done.iter().enumerate() {
            if slot.is_none() {
                group.send(offset + w, Command::Query(seq)).await?;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while g.done.iter().any(Option::is_none) {
            match group.next(deadline).await {
                Some((i, report)) => g.absorb(i, report, true, label),
                None => break,
            }
        }
    }
    let tallies: Vec<Tally> = g.done.iter().flatten().copied().collect();
    let counted: Vec<&Tally> = tallies.iter().filter(|t| t.count > 0).collect();
    Ok(Broadcast {
        expected: 0,
        delivered: tallies.iter().map(|t| t.count).sum(),
        first_ns: counted.iter().map(|t| t.first_ns).min().unwrap_or(0),
        last_ns: counted.iter().map(|t| t.last_ns).max().unwrap_or(0),
        ack_ns: g.ack,
        complete,
        bytes: tallies.iter().map(|t| t.bytes).max().unwrap_or(0),
    })
}

fn note(label: &str, index: usize, report: &Report) {
    match report {
        Report::Error(text) => eprintln!("alert-load: {label}: child {index}: {text}"),
        other => eprintln!("alert-load: {label}: child {index}: {}", other.line()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_are_spread_over_workers_and_servers() {
        let c = split(100_000, 6, 6);
        assert_eq!(c.len(), 6);
        assert_eq!(c.iter().flatten().sum::<usize>(), 100_000);
        let per_server: Vec<usize> = (0..6).map(|s| c.iter().map(|r| r[s]).sum()).collect();
        assert!(per_server.iter().all(|&n| (16_666..=16_667).contains(&n)));
        assert!(c.iter().all(|r| r.iter().sum::<usize>() <= 16_667));
        assert_eq!(split(10, 3, 1), vec![vec![4], vec![4], vec![2]]);
    }
}
