//! The result of a run: the numbers, a Markdown table, and its place in BENCHMARKS.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::ceiling::Ceiling;
use crate::fanout::Fanout;
use crate::procfs::Sched;

/// Goals from issue 3.
pub const GOAL_PER_CORE: f64 = 250_000.0;
pub const GOAL_RATIO: f64 = 0.55;
pub const GOAL_US_PER_PACKET: f64 = 4.0;
pub const GOAL_P99_US: f64 = 1000.0;

/// The heading of this benchmark's section in BENCHMARKS.md.
pub const SECTION: &str = "## SFU load over real UDP on loopback (`benches/sfu-load`)";

const SECTION_INTRO: &str = "\
Runs `hubcast serve` (release) as a child process on loopback and connects K WHIP publishers and
K×M WHEP subscribers built on str0m (full ICE, controlling, RTP mode; one UDP socket each on
127.0.0.2/127.0.0.3). Each publisher sends synthetic VP8 (valid payload descriptor with picture
id/TL0PICIDX/TID, ~1150-byte payloads, keyframes 3× larger every N frames and on PLI) and Opus
(20 ms). Each payload carries its CLOCK_REALTIME send time; subscribers take the kernel's
SO_TIMESTAMPNS receive time, so *added latency* is publisher send → subscriber socket, i.e. the
SFU plus two loopback hops, not the client threads' scheduling. Server CPU is utime+stime of the
hub process from `/proc/<pid>/stat` over the window; forwarded packets from the hub's
`hubcast_sfu_forwarded_packets_total`. The ceiling is measured in the same run before the hub
starts: one thread sealing 1228-byte datagrams with AES-128-GCM (aws-lc, as str0m) and sending
them with `sendmmsg` ×32 to a loopback socket that another thread drains with `recvmmsg` (it
keeps up, so every datagram is really delivered, as to the subscribers), per CPU-second of the
sending thread (on loopback the delivery runs in the sender's system call). Clients and hub
share the same 2 cores, and other agents' builds may be running: the per-CPU-second numbers are
the ones to compare (they still vary ±15 % with the neighbours' load), wall-clock rates are not
capacities. The hub's CPU includes everything it does: ingress, SRTP, RTCP/TWCC, timers, the
HTTP side. A second ceiling runs after the hub stops (since session 9): the same seal and
`sendmmsg`, but shaped like the hub's egress (one datagram to each of as many sockets as the run
had subscribers, a call per room's copies, read by as many epoll threads as the run's clients,
paced at the rate the hub forwarded): what a hub that only sealed and sent would cost per copy
here, wake-ups of the readers included.

Run: `cargo build --release --bin hubcast && cargo run --release -p sfu-load -- --publishers K
--subscribers-per-publisher M --seconds S` (each run appends an entry below).
";

/// Everything a run measured.
#[derive(Debug)]
pub struct Run {
    pub command: String,
    pub date: String,
    pub machine: String,
    pub hub: String,
    pub setup: String,
    pub ceiling: Option<Ceiling>,
    pub fanout: Option<Fanout>,
    pub wall_s: f64,
    pub forwarded: f64,
    pub received: u64,
    pub sent: u64,
    pub subscribers_per_publisher: usize,
    pub server_cpu_s: f64,
    pub client_cpu_s: f64,
    pub machine_busy: f64,
    pub latency_all_ns: Vec<u64>,
    pub latency_video_ns: Vec<u64>,
    pub latency_keyframe_ns: Vec<u64>,
    pub latency_audio_ns: Vec<u64>,
    pub rss_base: u64,
    pub rss_end: u64,
    pub peers: usize,
    pub loss_expected: u64,
    pub loss_received: u64,
    pub threads: BTreeMap<String, Sched>,
    pub ksoftirqd_s: f64,
    pub keyframe_requests: u64,
    pub keyframes: u64,
    pub failures: u64,
    pub send_errors: u64,
    pub hub_drops: f64,
    /// Video pauses toward viewers whose estimate could not carry it, in the window.
    pub hub_pauses: f64,
    /// Datagrams the hub sent in the window (`hubcast_sfu_sent_datagrams_total`; `None`
    /// for a hub without the counter).
    pub hub_sent_datagrams: Option<f64>,
    /// The window's `hubcast_sfu_receive_to_send_seconds` buckets: (upper bound, cumulative
    /// count); empty for a hub without it.
    pub hub_receive_to_send: Vec<(f64, f64)>,
}

/// The upper bound of the bucket holding quantile `q` of a cumulative histogram.
fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, n)| *n >= q * total)
        .map(|(le, _)| *le)
}

fn bound(v: Option<f64>) -> String {
    match v {
        Some(s) if s.is_finite() => format!("≤ {:.0} µs", s * 1e6),
        Some(_) => "> the top bucket".to_owned(),
        None => "–".to_owned(),
    }
}

fn pct(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)] as f64 / 1000.0)
}

fn us(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.0} µs"))
}

fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

impl Run {
    /// Forwarded packets per CPU-second of the hub.
    pub fn per_core(&self) -> f64 {
        self.forwarded / self.server_cpu_s.max(1e-9)
    }

    /// Hub CPU microseconds per forwarded packet (= CPU-seconds per million packets).
    pub fn us_per_packet(&self) -> f64 {
        self.server_cpu_s * 1e6 / self.forwarded.max(1.0)
    }

    /// The Markdown entry of this run.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let wall = self.wall_s.max(1e-9);
        let _ = writeln!(m, "### {} · {}\n", self.date, self.setup);
        let _ = writeln!(m, "Command: `{}`  ", self.command);
        let _ = writeln!(m, "Machine: {}  ", self.machine);
        let _ = writeln!(m, "Hub: {}\n", self.hub);
        let _ = writeln!(m, "| measure | value | goal |");
        let _ = writeln!(m, "|---|---|---|");
        let _ = writeln!(
            m,
            "| forwarded packets/s (hub metric) | {} | |",
            thousands(self.forwarded / wall)
        );
        let expected = self.sent as f64 * self.subscribers_per_publisher as f64;
        let _ = writeln!(
            m,
            "| received packets/s (subscribers) | {} ({:.1} % of publishers' sends × M) | |",
            thousands(self.received as f64 / wall),
            100.0 * self.received as f64 / expected.max(1.0)
        );
        let _ = writeln!(
            m,
            "| hub CPU | {:.3} CPU-s in {:.1} s ({:.1} % of one core) | |",
            self.server_cpu_s,
            self.wall_s,
            100.0 * self.server_cpu_s / wall
        );
        let per_core = self.per_core();
        let us_pp = self.us_per_packet();
        let _ = writeln!(
            m,
            "| hub CPU-s per million forwarded packets | {us_pp:.1} | ≤ {GOAL_US_PER_PACKET} ({}) |",
            verdict(us_pp <= GOAL_US_PER_PACKET)
        );
        let _ = writeln!(
            m,
            "| µs hub CPU per forwarded packet | {us_pp:.2} | ≤ {GOAL_US_PER_PACKET} ({}) |",
            verdict(us_pp <= GOAL_US_PER_PACKET)
        );
        if let Some(sent) = self.hub_sent_datagrams {
            let _ = writeln!(
                m,
                "| hub datagrams sent per forwarded packet (retransmissions, probe padding, RTCP, STUN on top of the copies) | {:.3} | |",
                sent / self.forwarded.max(1.0)
            );
        }
        let _ = writeln!(
            m,
            "| forwarded packets/s per core | {} | ≥ {} ({}) |",
            thousands(per_core),
            thousands(GOAL_PER_CORE),
            verdict(per_core >= GOAL_PER_CORE)
        );
        if let Some(c) = &self.ceiling {
            let ratio = per_core / c.per_core().max(1e-9);
            let _ = writeln!(
                m,
                "| ratio to the ceiling | {ratio:.3} | ≥ {GOAL_RATIO} ({}) |",
                verdict(ratio >= GOAL_RATIO)
            );
            let _ = writeln!(
                m,
                "| ceiling: AES-128-GCM + sendmmsg ×32, 1228 B, per core | {} /s ({:.2} µs each; {} /s wall; sender ran {:.0} % of the time, waited {:.0} % for a CPU; ksoftirqd {:.2} CPU-s; drain got {:.0} %{}) | ~440,000 measured before |",
                thousands(c.per_core()),
                1e6 / c.per_core().max(1e-9),
                thousands(c.per_wall_s()),
                100.0 * c.cpu_s / c.wall_s.max(1e-9),
                100.0 * c.wait_s / c.wall_s.max(1e-9),
                c.ksoftirqd_s,
                100.0 * c.received as f64 / (c.sent as f64).max(1.0),
                if (c.received as f64) < 0.95 * c.sent as f64 {
                    "; the receiver fell behind, so this ceiling is optimistic"
                } else {
                    ""
                }
            );
            let _ = writeln!(
                m,
                "| AES-128-GCM seal of 1200 B alone, per core | {} /s | ~4,000,000 measured before |",
                thousands(c.seal_only_per_s)
            );
        }
        if let Some(f) = &self.fanout {
            let hub_us = 1e6 * self.server_cpu_s / self.forwarded.max(1.0);
            let _ = writeln!(
                m,
                "| fan-out ceiling: the same seal and `sendmmsg` to {} sockets ({} rooms × {}, a call per room's copies) read by {} epoll threads, paced at {} /s (sent {} /s) | {:.2} µs per datagram ({:.0} % delivered); the hub's CPU per forwarded packet is {:.1}× it | — |",
                f.shape.per_room * f.shape.rooms,
                f.shape.rooms,
                f.shape.per_room,
                f.shape.threads,
                thousands(f.shape.rate),
                thousands(f.sent as f64 / f.wall_s.max(1e-9)),
                f.us_per_datagram(),
                100.0 * f.received as f64 / (f.sent as f64).max(1.0),
                hub_us / f.us_per_datagram().max(1e-9),
            );
        }
        if !self.hub_receive_to_send.is_empty() {
            let h = &self.hub_receive_to_send;
            let _ = writeln!(
                m,
                "| the hub's own share: receipt → hand-off to the kernel, p50 / p99 / p99.9 (per received datagram; copies held by a viewer's pacer excluded) | {} / {} / {} | |",
                bound(bucket_quantile(h, 0.5)),
                bound(bucket_quantile(h, 0.99)),
                bound(bucket_quantile(h, 0.999)),
            );
        }
        let all = &self.latency_all_ns;
        let _ = writeln!(
            m,
            "| added latency p50 / p99 / p99.9 / max (all, {} samples) | {} / {} / {} / {} | p99 < 1 ms ({}) |",
            all.len(),
            us(pct(all, 0.5)),
            us(pct(all, 0.99)),
            us(pct(all, 0.999)),
            us(pct(all, 1.0)),
            verdict(pct(all, 0.99).is_some_and(|p| p < GOAL_P99_US))
        );
        let v = &self.latency_video_ns;
        let kf = &self.latency_keyframe_ns;
        let a = &self.latency_audio_ns;
        let _ = writeln!(
            m,
            "| added latency p50 / p99: video delta frames · keyframes · audio | {} / {} · {} / {} · {} / {} | |",
            us(pct(v, 0.5)),
            us(pct(v, 0.99)),
            us(pct(kf, 0.5)),
            us(pct(kf, 0.99)),
            us(pct(a, 0.5)),
            us(pct(a, 0.99))
        );
        let rss_delta = self.rss_end.saturating_sub(self.rss_base);
        let _ = writeln!(
            m,
            "| hub RSS per peer | {:.0} KiB ({:.1} MiB idle → {:.1} MiB with {} peers) | |",
            rss_delta as f64 / 1024.0 / self.peers.max(1) as f64,
            self.rss_base as f64 / 1048576.0,
            self.rss_end as f64 / 1048576.0,
            self.peers
        );
        let lost = self.loss_expected.saturating_sub(self.loss_received);
        let _ = writeln!(
            m,
            "| packet loss seen by subscribers | {:.3} % ({} of {}) | |",
            100.0 * lost as f64 / (self.loss_expected as f64).max(1.0),
            lost,
            self.loss_expected
        );
        let _ = writeln!(
            m,
            "| load-generator CPU (all clients) · ksoftirqd · machine busy | {:.1} % of one core · {:.1} % · {:.0} % of all cores | |",
            100.0 * self.client_cpu_s / wall,
            100.0 * self.ksoftirqd_s / wall,
            100.0 * self.machine_busy
        );
        let _ = writeln!(
            m,
            "| whole run: keyframes sent (PLIs received) · client failures · client send errors; window: hub drops · video pauses for bandwidth | {} ({}) · {} · {} · {} · {} | |",
            self.keyframes,
            self.keyframe_requests,
            self.failures,
            self.send_errors,
            self.hub_drops,
            self.hub_pauses
        );
        let mut threads: Vec<(&String, &Sched)> = self
            .threads
            .iter()
            .filter(|(_, s)| s.cpu_s > 0.0005)
            .collect();
        threads.sort_by(|a, b| b.1.cpu_s.total_cmp(&a.1.cpu_s));
        let list: Vec<String> = threads
            .iter()
            .map(|(name, s)| {
                let mut t = format!("`{name}` {:.1} %", 100.0 * s.cpu_s / wall);
                if s.runs > 0 {
                    let _ = write!(
                        t,
                        " ({} runs, {:.1} µs CPU and {:.0} µs run-queue wait per run)",
                        s.runs,
                        s.cpu_s * 1e6 / s.runs as f64,
                        s.wait_s * 1e6 / s.runs as f64
                    );
                }
                t
            })
            .collect();
        let _ = writeln!(
            m,
            "\nHub threads in the window, CPU as % of one core: {}.",
            if list.is_empty() {
                "(none measurable)".to_owned()
            } else {
                list.join(", ")
            }
        );
        m
    }
}

/// Inserts `entry` at the end of this benchmark's section of `path` (created with its intro if
/// missing), leaving every other section as it is.
pub fn append(path: &Path, entry: &str) -> anyhow::Result<()> {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    if text.is_empty() {
        text.push_str("# Benchmarks\n");
    }
    if !text.contains(SECTION) {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("\n{SECTION}\n\n{SECTION_INTRO}"));
    }
    let start = text.find(SECTION).unwrap_or(0) + SECTION.len();
    let end = text[start..]
        .find("\n## ")
        .map_or(text.len(), |i| start + i + 1);
    let mut before = text[..end].to_owned();
    while before.ends_with("\n\n") {
        before.pop();
    }
    let after = &text[end..];
    let mut out = before;
    out.push('\n');
    out.push_str(entry);
    if !after.is_empty() {
        out.push('\n');
        out.push_str(after);
    }
    std::fs::write(path, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_go_to_the_end_of_the_section() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("B.md");
        std::fs::write(
            &path,
            format!("# B\n\n## Other\n\nx\n\n{SECTION}\n\nintro\n\n## Last\n\ny\n"),
        )?;
        append(&path, "### run 1\n")?;
        append(&path, "### run 2\n")?;
        let text = std::fs::read_to_string(&path)?;
        let (r1, r2, last) = (
            text.find("run 1").unwrap_or(0),
            text.find("run 2").unwrap_or(0),
            text.find("## Last").unwrap_or(0),
        );
        assert!(text.starts_with("# B\n\n## Other\n\nx\n"));
        assert!(r1 > 0 && r1 < r2 && r2 < last, "{text}");
        Ok(())
    }

    #[test]
    fn quantiles_are_the_bounds_of_their_buckets() {
        let h = [
            (0.001, 50.0),
            (0.01, 99.0),
            (0.1, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(bucket_quantile(&h, 0.5), Some(0.001));
        assert_eq!(bucket_quantile(&h, 0.99), Some(0.01));
        assert_eq!(bucket_quantile(&h, 0.999), Some(0.1));
        assert_eq!(bucket_quantile(&[(f64::INFINITY, 0.0)], 0.5), None);
        assert_eq!(bound(Some(0.00025)), "≤ 250 µs");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
