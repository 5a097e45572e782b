//! `sfu-load`: a load run of hubcast's SFU over real UDP on loopback (issue 3, benchmark b).
//!
//! Phases: (1) the physical ceiling, AES-128-GCM + `sendmmsg` ×32 on one thread; (2) start
//! `hubcast serve` and mint a token; (3) K publishers via WHIP, then K×M subscribers via WHEP,
//! str0m clients on a few threads; (4) warm-up, then an S-second window in which the hub's CPU
//! (`/proc`), its forwarded-packet counter, the subscribers' receive counts, latency stamps and
//! sequence numbers are taken; (5) after the hub stops, the fan-out ceiling: the same seal and
//! `sendmmsg` into as many sockets as the run had subscribers, at the hub's rate; (6) a table on
//! stdout and an entry in BENCHMARKS.md.
//!
//! Layout: `ceiling` (phases 1 and 5: `fanout`), `hub` (the child process), `http` (a tiny blocking client),
//! `client` (str0m peers and their threads), `media` (synthetic VP8/Opus with send stamps),
//! `procfs` (CPU and RSS), `report` (table and BENCHMARKS.md).

mod ceiling;
mod client;
mod fanout;
mod http;
mod hub;
mod media;
mod procfs;
mod report;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

use client::{Client, ClientThread, MediaConfig, Shared};

/// Load benchmark of `hubcast serve`'s SFU: K publishers × M subscribers over loopback UDP.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Publishers (K).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Subscribers per publisher (M).
    #[arg(long, default_value_t = 20)]
    subscribers_per_publisher: usize,
    /// Length of the measurement window, seconds (S).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The hubcast binary [default: `hubcast` next to this binary, i.e. the release build].
    #[arg(long)]
    hub: Option<PathBuf>,
    /// Rooms the publishers are spread over [default: one room per publisher]. The hub pins a
    /// room to one worker thread.
    #[arg(long)]
    rooms: Option<usize>,
    /// Video bitrate per publisher, kbit/s of payload.
    #[arg(long, default_value_t = 1000)]
    video_kbps: u32,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// A keyframe every this many frames (plus on PLI).
    #[arg(long, default_value_t = 60)]
    keyframe_interval: u64,
    /// Seconds of steady state before the window opens.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Hub SFU worker threads (`HUBCAST_SFU__WORKERS`; 0: the hub's default, one per core).
    #[arg(long, default_value_t = 0)]
    hub_workers: usize,
    /// Clients per client thread.
    #[arg(long, default_value_t = 50)]
    clients_per_thread: usize,
    /// Seconds of the ceiling loop (0: skip it).
    #[arg(long, default_value_t = 3.0)]
    ceiling_seconds: f64,
    /// Datagrams/s of the fan-out ceiling [default 0: the rate the hub forwarded in the run].
    #[arg(long, default_value_t = 0.0)]
    fanout_rate: f64,
    /// Only measure the ceiling.
    #[arg(long)]
    ceiling: bool,
    /// BENCHMARKS.md to append to [default: the workspace's].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the table only; do not touch BENCHMARKS.md.
    #[arg(long)]
    no_write: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    str0m::crypto::from_feature_flags().install_process_default();
    let ceiling = if args.ceiling || args.ceiling_seconds > 0.0 {
        let seconds = if args.ceiling_seconds > 0.0 {
            args.ceiling_seconds
        } else {
            3.0
        };
        eprintln!("sfu-load: ceiling, {seconds} s ...");
        let c = ceiling::run(seconds)?;
        eprintln!(
            "sfu-load: ceiling {:.0} datagrams/s per CPU-second of the sender ({:.0}/s wall; sender CPU {:.2} s, run-queue wait {:.2} s, ksoftirqd {:.2} s in {:.2} s; drain got {}/{}), AES-GCM alone {:.0}/s",
            c.per_core(),
            c.per_wall_s(),
            c.cpu_s,
            c.wait_s,
            c.ksoftirqd_s,
            c.wall_s,
            c.received,
            c.sent,
            c.seal_only_per_s
        );
        Some(c)
    } else {
        None
    };
    if args.ceiling {
        return Ok(());
    }
    let run = load(&args, ceiling)?;
    let entry = run.markdown();
    println!("\n{entry}");
    if !args.no_write {
        let path = args.out.unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../BENCHMARKS.md")
        });
        report::append(&path, &entry)?;
        eprintln!("sfu-load: appended to {}", path.display());
    }
    Ok(())
}

/// Polls `done` every 50 ms until it holds or `timeout` passes.
fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn load(args: &Args, ceiling: Option<ceiling::Ceiling>) -> anyhow::Result<report::Run> {
    let k = args.publishers.max(1);
    let m = args.subscribers_per_publisher;
    let rooms = args.rooms.unwrap_or(k).clamp(1, k);
    let machine = benchkit::machine_description();
    let binary = benchkit::hub_binary(args.hub.as_deref(), "--hub")?;
    let hub_built = benchkit::hub_description(&binary, &["sfu", "src"]);
    let mut hub = hub::Hub::start(&binary, args.hub_workers)?;
    let pid = hub.pid();
    eprintln!(
        "sfu-load: hub pid {pid} on http://{} (log {})",
        hub.addr,
        hub.log.display()
    );
    std::thread::sleep(Duration::from_millis(300));
    let rss_base = procfs::rss_bytes(pid)?;

    let shared = Arc::new(Shared::default());
    let peers = k * (m + 1);
    let n_threads = peers.div_ceil(args.clients_per_thread.max(1)).max(1);
    let threads: Vec<ClientThread> = (0..n_threads)
        .map(|i| ClientThread::spawn(i, shared.clone()))
        .collect::<anyhow::Result<_>>()?;
    let config = MediaConfig {
        video_kbps: args.video_kbps,
        fps: args.fps,
        keyframe_every: args.keyframe_interval,
    };
    let mut next_thread = 0usize;
    let mut place = |c: Client| -> anyhow::Result<()> {
        let r = threads[next_thread % n_threads].add(c);
        next_thread += 1;
        r
    };

    // Publishers first: their tracks must exist before viewers subscribe to them.
    let publisher_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut publishers = Vec::with_capacity(k);
    for i in 0..k {
        let room = format!("load-{}", i % rooms);
        let (client, id) = Client::publisher(&hub, &room, publisher_ip, config, i as u64 + 1)
            .with_context(|| format!("publisher {i}"))?;
        place(client)?;
        publishers.push((room, id));
    }
    wait_for("publishers to connect", Duration::from_secs(30), || {
        shared.connected.load(Ordering::Relaxed) >= k
    })?;
    std::thread::sleep(Duration::from_millis(500));
    eprintln!(
        "sfu-load: {k} publishers connected; adding {} subscribers",
        k * m
    );
    for j in 0..m {
        for (i, (room, id)) in publishers.iter().enumerate() {
            let n = j * k + i;
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3 + (n / 20_000) as u8));
            let client = Client::subscriber(&hub, room, *id, ip)
                .with_context(|| format!("subscriber {j} of publisher {i}"))?;
            place(client)?;
        }
    }
    wait_for(
        "subscribers to connect and receive video and audio",
        Duration::from_secs(60),
        || {
            shared.connected.load(Ordering::Relaxed) >= peers
                && shared.subs_with_video.load(Ordering::Relaxed) >= k * m
                && shared.subs_with_audio.load(Ordering::Relaxed) >= k * m
        },
    )?;
    eprintln!(
        "sfu-load: {peers} peers connected on {n_threads} client threads; warm-up {} s, window {} s",
        args.warmup, args.seconds
    );
    std::thread::sleep(Duration::from_secs(args.warmup));

    // The window.
    let threads0 = hub_threads(pid);
    let workers = threads0
        .keys()
        .filter(|name| name.starts_with("sfu-worker"))
        .count();
    let softirq0 = procfs::ksoftirqd_cpu_seconds();
    let me = std::process::id();
    let client0 = procfs::process_cpu_seconds(me)?;
    let machine0 = benchkit::machine_jiffies();
    // The hub's counters in one scrape, next to its CPU reading (the window's two ends).
    let m0 = hub.scrape()?;
    let cpu0 = procfs::process_cpu_seconds(pid)?;
    let t0 = Instant::now();
    shared.measuring.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(args.seconds));
    shared.measuring.store(false, Ordering::Relaxed);
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu1 = procfs::process_cpu_seconds(pid)?;
    let m1 = hub.scrape()?;
    let machine1 = benchkit::machine_jiffies();
    let client1 = procfs::process_cpu_seconds(me)?;
    let threads1 = hub_threads(pid);
    let softirq1 = procfs::ksoftirqd_cpu_seconds();
    let forwarded = |m: &hub::Scrape| m.sample("hubcast_sfu_forwarded_packets_total");
    let (Some(fwd0), Some(fwd1)) = (forwarded(&m0), forwarded(&m1)) else {
        anyhow::bail!("no hubcast_sfu_forwarded_packets_total in /metrics");
    };
    // Absent from hubs built before the counters existed: not reported then.
    let sent = |m: &hub::Scrape| m.sample("hubcast_sfu_sent_datagrams_total");
    let residence = "hubcast_sfu_receive_to_send_seconds";
    let (residence0, residence1) = (m0.histogram(residence), m1.histogram(residence));
    let drops = |m: &hub::Scrape| m.sum("hubcast_sfu_dropped_packets_total");
    let pauses = |m: &hub::Scrape| {
        m.sample("hubcast_sfu_bandwidth_pauses_total")
            .unwrap_or(0.0)
    };
    let rss_end = procfs::rss_bytes(pid)?;

    shared.stop.store(true, Ordering::Relaxed);
    let mut latency_video_ns = Vec::new();
    let mut latency_keyframe_ns = Vec::new();
    let mut latency_audio_ns = Vec::new();
    let (mut loss_expected, mut loss_received) = (0, 0);
    for t in threads {
        let r = t.join();
        latency_video_ns.extend(r.latency_video_ns);
        latency_keyframe_ns.extend(r.latency_keyframe_ns);
        latency_audio_ns.extend(r.latency_audio_ns);
        for (expected, received) in r.streams {
            loss_expected += expected;
            loss_received += received;
        }
    }
    hub.stop();
    // With the hub gone, its egress alone: same sockets' count, reader threads and rate.
    let fanout = match (&ceiling, fwd1 - fwd0) {
        (Some(_), forwarded) if forwarded > 0.0 => {
            let shape = fanout::Shape {
                per_room: (k * m).div_ceil(rooms),
                rooms,
                threads: n_threads,
                rate: if args.fanout_rate > 0.0 {
                    args.fanout_rate
                } else {
                    forwarded / wall_s
                },
            };
            eprintln!("sfu-load: fan-out ceiling ({shape:?}) ...");
            Some(fanout::run(shape, args.ceiling_seconds.max(2.0))?)
        }
        _ => None,
    };
    latency_video_ns.sort_unstable();
    latency_keyframe_ns.sort_unstable();
    latency_audio_ns.sort_unstable();
    let mut latency_all_ns: Vec<u64> = latency_video_ns
        .iter()
        .chain(&latency_keyframe_ns)
        .chain(&latency_audio_ns)
        .copied()
        .collect();
    latency_all_ns.sort_unstable();
    let threads_cpu = threads1
        .iter()
        .map(|(name, s)| {
            let before = threads0.get(name).copied().unwrap_or_default();
            (name.clone(), s.since(&before))
        })
        .collect();
    let (busy, total) = (
        machine1.0.saturating_sub(machine0.0),
        machine1.1.saturating_sub(machine0.1),
    );
    let command = format!(
        "cargo run --release -p sfu-load -- {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    let date = benchkit::today();
    let setup = format!(
        "K={k} publishers × M={m} subscribers, S={} s, {rooms} room(s); VP8 {} kbit/s {} fps ({} B frames in {} B packets and a shorter last one, keyframes 3× every {} frames) + Opus 20 ms; {peers} str0m peers on {n_threads} client thread(s); {workers} hub SFU worker threads",
        args.seconds,
        args.video_kbps,
        args.fps,
        config.frame_bytes(),
        media::VIDEO_PAYLOAD,
        args.keyframe_interval,
    );
    Ok(report::Run {
        command,
        date,
        machine,
        hub: hub_built,
        setup,
        ceiling,
        fanout,
        wall_s,
        forwarded: fwd1 - fwd0,
        received: shared.received_window.load(Ordering::Relaxed),
        sent: shared.sent_window.load(Ordering::Relaxed),
        subscribers_per_publisher: m,
        server_cpu_s: cpu1 - cpu0,
        client_cpu_s: client1 - client0,
        machine_busy: busy as f64 / (total as f64).max(1.0),
        latency_all_ns,
        latency_video_ns,
        latency_keyframe_ns,
        latency_audio_ns,
        rss_base,
        rss_end,
        peers,
        loss_expected,
        loss_received,
        threads: threads_cpu,
        ksoftirqd_s: softirq1 - softirq0,
        keyframe_requests: shared.keyframe_requests.load(Ordering::Relaxed),
        keyframes: shared.keyframes.load(Ordering::Relaxed),
        failures: shared.failures.load(Ordering::Relaxed),
        send_errors: shared.send_errors.load(Ordering::Relaxed),
        hub_drops: drops(&m1) - drops(&m0),
        hub_pauses: pauses(&m1) - pauses(&m0),
        hub_sent_datagrams: sent(&m0).zip(sent(&m1)).map(|(a, b)| b - a),
        hub_receive_to_send: if residence0.len() == residence1.len() {
            (residence1.iter().zip(&residence0))
                .map(|(&(le, after), &(_, before))| (le, after - before))
                .collect()
        } else {
            Vec::new()
        },
    })
}

/// Scheduler accounting of the hub's threads by name (CPU only, from `stat`, when the kernel
/// keeps no schedstats).
fn hub_threads(pid: u32) -> BTreeMap<String, procfs::Sched> {
    let sched = procfs::thread_sched(pid);
    if !sched.is_empty() {
        return sched;
    }
    procfs::thread_cpu_seconds(pid)
        .into_iter()
        .map(|(name, cpu_s)| {
            let s = procfs::Sched {
                cpu_s,
                ..procfs::Sched::default()
            };
            (name, s)
        })
        .collect()
}
