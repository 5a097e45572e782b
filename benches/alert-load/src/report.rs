//! The result of a run: statistics over the broadcasts, one Markdown entry (hubcast beside the
//! ceiling of the same run, ratios and goals), and its place in BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::Path;

use crate::RunArgs;
use crate::measure::{Broadcast, Phase};

/// Goals of issue 4.
pub const GOAL_RATIO: f64 = 0.9;
pub const GOAL_RSS_BYTES: f64 = 4096.0;
pub const GOAL_P99_MS_AT_100K: f64 = 600.0;

/// The heading of this benchmark's section in BENCHMARKS.md.
pub const SECTION: &str = "## Alert fan-out load (`alert-load`)";

/// Everything a run measured.
#[derive(Debug)]
pub struct Run {
    pub command: String,
    pub date: String,
    pub machine: String,
    pub hub_built: String,
    pub subscribers: usize,
    pub hubs: usize,
    pub redis: bool,
    pub workers: usize,
    pub frame_bytes: usize,
    pub hub_threads: usize,
    /// The subscribers' path (WebSocket or SSE).
    pub path: &'static str,
    pub ceiling: Option<Phase>,
    /// The WebSocket ceiling (`--ws-ceiling`).
    pub ceiling_ws: Option<Phase>,
    pub ws_frame_bytes: usize,
    pub hub: Option<Phase>,
}

impl Run {
    /// The run's description before anything is measured.
    pub fn new(args: &RunArgs, binary: &Path) -> Run {
        let given: Vec<String> = std::env::args().skip(1).collect();
        Run {
            command: format!("cargo run --release -p alert-load -- {}", given.join(" ")),
            date: benchkit::today(),
            machine: benchkit::machine_description(),
            hub_built: benchkit::hub_description(binary, &["src", "alerts"]),
            subscribers: args.subscribers,
            hubs: args.hubs,
            redis: args.redis,
            workers: args.worker_count(),
            frame_bytes: args.frame_bytes,
            hub_threads: 0,
            path: crate::hub::subscribe_path(args.sse),
            ceiling: None,
            ceiling_ws: None,
            ws_frame_bytes: args.ws_frame_bytes,
            hub: None,
        }
    }

    /// The Markdown entry.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let on = if self.redis { " on one Redis" } else { "" };
        let _ = writeln!(
            s,
            "### {} · N={} subscribers, {} hubcast process(es){on}, {} client workers\n",
            self.date, self.subscribers, self.hubs, self.workers
        );
        let _ = writeln!(s, "Command: `{}`  ", self.command);
        let _ = writeln!(s, "Machine: {}  ", self.machine);
        let _ = writeln!(
            s,
            "Hub: {} ({} threads in the first hub process)  ",
            self.hub_built, self.hub_threads
        );
        let _ = writeln!(
            s,
            "Setup: every subscriber on `{}`; ceiling frame {} B, one `write` per socket per \
             broadcast from one thread per ceiling server (as many servers as hubs)\n",
            self.path, self.frame_bytes
        );
        let (h, c, w) = (
            self.hub.as_ref(),
            self.ceiling.as_ref(),
            self.ceiling_ws.as_ref(),
        );
        if w.is_some() {
            let _ = writeln!(
                s,
                "WebSocket ceiling: the same servers answer the upgrade, then write one \
                 pre-encoded {} B WebSocket text frame per socket per broadcast, read by the \
                 same tokio-tungstenite subscribers as hubcast's\n",
                self.ws_frame_bytes
            );
            let _ = writeln!(
                s,
                "| measure | hubcast | ceiling | WebSocket ceiling | goal |\n|---|---|---|---|---|"
            );
        } else {
            let _ = writeln!(
                s,
                "| measure | hubcast | ceiling | goal |\n|---|---|---|---|"
            );
        }
        let mut row = |name: &str, f: &dyn Fn(&Phase) -> String, goal: String| {
            let cell = |p: Option<&Phase>| p.map_or_else(|| "—".to_owned(), f);
            let ws = w.map_or_else(String::new, |p| format!(" {} |", f(p)));
            let _ = writeln!(s, "| {name} | {} | {} |{ws} {goal} |", cell(h), cell(c));
        };
        row(
            "subscribers connected (failed) · connect time",
            &|p| format!("{} ({}) · {:.1} s", p.connected, p.failed, p.connect_s),
            String::new(),
        );
        row(
            "payload per delivery",
            &|p| {
                format!(
                    "{} B",
                    p.broadcasts.iter().map(|b| b.bytes).max().unwrap_or(0)
                )
            },
            String::new(),
        );
        let p99_goal = if self.subscribers >= 100_000 {
            let met = h
                .and_then(|p| pct(&lasts(p), 0.99))
                .map(|v| v <= GOAL_P99_MS_AT_100K);
            let ws = w
                .and_then(|p| pct(&lasts(p), 0.99))
                .map(|v| v <= GOAL_P99_MS_AT_100K);
            let ws = if w.is_some() {
                format!("; WebSocket ceiling {}", verdict(ws))
            } else {
                String::new()
            };
            format!(
                "p99 ≤ {GOAL_P99_MS_AT_100K} ms at 100k {}{ws}",
                verdict(met)
            )
        } else {
            format!("(p99 ≤ {GOAL_P99_MS_AT_100K} ms at 100k)")
        };
        row(
            "time to last delivery p50 / p99 / max",
            &|p| {
                let l = lasts(p);
                format!(
                    "{} / {} / {} ms",
                    ms(pct(&l, 0.5)),
                    ms(pct(&l, 0.99)),
                    ms(pct(&l, 1.0))
                )
            },
            p99_goal,
        );
        row(
            "time to first delivery p50",
            &|p| format!("{} ms", ms(pct(&sorted(p, |b| b.first_ns as f64), 0.5))),
            String::new(),
        );
        row(
            "publish answered (hubcast) · server write loop done (ceiling), p50",
            &|p| {
                let acks = sorted(p, |b| b.ack_ns.map_or(0.0, |a| a as f64));
                format!("{} ms", ms(pct(&acks, 0.5)))
            },
            String::new(),
        );
        let ratio = match (h.and_then(rate_p50), c.and_then(rate_p50)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let ratio_text = ratio.map_or_else(
            || "ratio —".to_owned(),
            |r| {
                format!(
                    "ratio {r:.2}, ≥ {GOAL_RATIO} {}",
                    verdict(Some(r >= GOAL_RATIO))
                )
            },
        );
        let ratio_text = match (h.and_then(rate_p50), w.and_then(rate_p50)) {
            (Some(a), Some(b)) if b > 0.0 => {
                format!("{ratio_text}; {:.2} of the WebSocket ceiling's", a / b)
            }
            _ => ratio_text,
        };
        row(
            "deliveries/s (N / p50 time to last)",
            &|p| rate_p50(p).map_or_else(|| "—".to_owned(), |r| format!("{r:.0}")),
            ratio_text,
        );
        row(
            "deliveries/s over all broadcasts (Σ delivered / Σ time to last)",
            &|p| format!("{:.0}", rate_all(p)),
            String::new(),
        );
        let cpu_ratio = match (h.map(us_per_delivery), c.map(us_per_delivery)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}× the ceiling's", a / b),
            _ => String::new(),
        };
        row(
            "server CPU per delivery (deliveries per CPU-second)",
            &|p| {
                let us = us_per_delivery(p);
                format!(
                    "{us:.2} µs ({:.0}/s)",
                    if us > 0.0 { 1e6 / us } else { 0.0 }
                )
            },
            cpu_ratio,
        );
        if self.redis {
            row(
                "Redis CPU per delivery",
                &|p| {
                    if !p.has_extra {
                        return "—".to_owned();
                    }
                    let us = p.extra_cpu_s * 1e6 / delivered(p).max(1.0);
                    format!("{us:.3} µs ({:.2} CPU-s)", p.extra_cpu_s)
                },
                String::new(),
            );
        }
        let rss_met = h.map(|p| rss_per_conn(p) <= GOAL_RSS_BYTES);
        row(
            "server RSS per idle connection",
            &|p| {
                format!(
                    "{:.0} B ({:.2} KiB)",
                    rss_per_conn(p),
                    rss_per_conn(p) / 1024.0
                )
            },
            format!("≤ 4 KiB {}", verdict(rss_met)),
        );
        row(
            "server RSS before → idle with N → after the broadcasts",
            &|p| {
                format!(
                    "{} → {} → {} MiB",
                    mib(p.rss_base),
                    mib(p.rss_idle),
                    mib(p.rss_after)
                )
            },
            String::new(),
        );
        row(
            "broadcasts complete · delivered / expected · connections lost",
            &|p| {
                let full = p.broadcasts.iter().filter(|b| b.complete).count();
                let exp: usize = p.broadcasts.iter().map(|b| b.expected).sum();
                format!(
                    "{full}/{} · {:.0}/{exp} · {}",
                    p.broadcasts.len(),
                    delivered(p),
                    p.closed
                )
            },
            String::new(),
        );
        row(
            "client CPU per delivery · machine busy in the window",
            &|p| {
                let us = p.client_cpu_s * 1e6 / delivered(p).max(1.0);
                format!("{us:.2} µs · {:.0} %", p.busy * 100.0)
            },
            String::new(),
        );
        s
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "(met)",
        Some(false) => "(**not met**)",
        None => "",
    }
}

fn delivered(p: &Phase) -> f64 {
    p.broadcasts.iter().map(|b| b.delivered as f64).sum()
}

/// A per-broadcast value, sorted.
fn sorted(p: &Phase, f: impl Fn(&Broadcast) -> f64) -> Vec<f64> {
    let mut v: Vec<f64> = p.broadcasts.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn lasts(p: &Phase) -> Vec<f64> {
    sorted(p, |b| b.last_ns as f64)
}

/// Nearest-rank percentile (`q` in 0..=1) of sorted values.
pub fn pct(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

fn ms(ns: Option<f64>) -> String {
    ns.map_or_else(|| "—".to_owned(), |v| format!("{:.1}", v / 1e6))
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// Subscribers connected / p50 time to last delivery.
pub fn rate_p50(p: &Phase) -> Option<f64> {
    let last = pct(&lasts(p), 0.5)?;
    (last > 0.0).then(|| p.connected as f64 / (last / 1e9))
}

fn rate_all(p: &Phase) -> f64 {
    let time: f64 = p.broadcasts.iter().map(|b| b.last_ns as f64 / 1e9).sum();
    if time > 0.0 { delivered(p) / time } else { 0.0 }
}

/// Server CPU µs per delivery over the measured broadcasts.
pub fn us_per_delivery(p: &Phase) -> f64 {
    p.server_cpu_s * 1e6 / delivered(p).max(1.0)
}

/// Bytes of server RSS per connection, idle.
pub fn rss_per_conn(p: &Phase) -> f64 {
    p.rss_idle.saturating_sub(p.rss_base) as f64 / (p.connected.max(1) as f64)
}

/// Inserts `entry` at the end of this benchmark's section of the file at `path` (the section
/// is created at the end of the file if missing).
pub fn append(path: &Path, entry: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
    std::fs::write(path, insert(&text, entry))?;
    Ok(())
}

fn insert(text: &str, entry: &str) -> String {
    let mut text = text.to_owned();
    if !text.contains(SECTION) {
        while text.ends_with("\n\n") {
            text.pop();
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("\n{SECTION}\n"));
    }
    let start = text.find(SECTION).map_or(0, |i| i + SECTION.len());
    let end = text
        .get(start..)
        .and_then(|rest| rest.find("\n## "))
        .map_or(text.len(), |i| start + i + 1);
    let mut out = text.get(..end).unwrap_or_default().trim_end().to_owned();
    out.push_str("\n\n");
    out.push_str(entry.trim_end());
    out.push('\n');
    let after = text.get(end..).unwrap_or_default();
    if !after.is_empty() {
        out.push('\n');
        out.push_str(after);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(pct(&v, 0.5), Some(10.0));
        assert_eq!(pct(&v, 0.99), Some(20.0));
        assert_eq!(pct(&v, 0.0), Some(1.0));
        assert_eq!(pct(&[], 0.5), None);
    }

    #[test]
    fn entries_go_to_the_end_of_the_section() {
        let doc = format!("# B\n\n{SECTION}\n\nintro\n\n### old\n\n## Next\n\nx\n");
        let out = insert(&doc, "### new\n");
        assert_eq!(
            out,
            format!("# B\n\n{SECTION}\n\nintro\n\n### old\n\n### new\n\n## Next\n\nx\n")
        );
        let out = insert("# B\n", "### e\n");
        assert_eq!(out, format!("# B\n\n{SECTION}\n\n### e\n"));
    }
}
