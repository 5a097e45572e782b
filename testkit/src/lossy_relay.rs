//! A loss- and delay-injecting UDP relay between media clients and the SFU (instead of netem).
//!
//! Clients send to [`LossyRelay::local_addr`]; for each client address the relay opens its own
//! upstream socket toward the server, so the server sees one (peer-reflexive) address per client
//! and its replies find their way back. Each datagram in an impaired direction is dropped with
//! probability `loss` (or, forwarded, sent twice with probability `duplicate`), and every
//! forwarded one waits `delay` (constant, so order is kept). A direction can also be made a
//! bottleneck of a given rate at any time ([`LossyRelay::set_rate`]): datagrams leave it at that
//! rate, queueing behind each other, and one that would wait more than [`MAX_QUEUE`] is dropped,
//! as a router's full buffer drops it. STUN, DTLS, RTP and RTCP are all treated alike, as a
//! lossy network would.
//!
//! To route a client through the relay, rewrite the server's answer with
//! [`rewrite_candidates`] (the WHEP/WHIP clients do it via `ClientOptions::media_via`;
//! `publish.html`/`view.html` take `?via=127.0.0.1:PORT`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Result;

/// Which way the impairment applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → server only (e.g. a publisher's uplink).
    ToServer,
    /// Server → client only (e.g. a viewer's downlink).
    ToClient,
    /// Both ways.
    Both,
}

/// Impairment settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Drop probability per datagram, 0.0–1.0.
    pub loss: f64,
    /// One-way delay added to every forwarded datagram of an impaired direction.
    pub delay: Duration,
    /// Directions the loss and delay apply to.
    pub direction: Direction,
    /// RNG seed, for reproducible drop patterns.
    pub seed: u64,
    /// Probability that a datagram forwarded in an impaired direction is sent twice (a
    /// network duplicate, or a replay as an attacker on the path would send it), 0.0–1.0.
    pub duplicate: f64,
    /// Probability that an RTP or RTCP datagram (first byte 128–191) forwarded in an impaired
    /// direction goes with its last byte flipped, the end of its SRTP authentication tag, in
    /// place of the original: a forgery or a corrupting middlebox, 0.0–1.0.
    pub tamper: f64,
}

impl RelayConfig {
    /// No loss, no delay, nothing duplicated or tampered with, toward the server: the base
    /// for a test that impairs one thing.
    pub fn passthrough() -> Self {
        Self {
            loss: 0.0,
            delay: Duration::ZERO,
            ..Self::default()
        }
    }
}

impl Default for RelayConfig {
    /// The loss scenario: 10 % loss and 40 ms delay toward the server.
    fn default() -> Self {
        Self {
            loss: 0.10,
            delay: Duration::from_millis(40),
            direction: Direction::ToServer,
            seed: 1,
            duplicate: 0.0,
            tamper: 0.0,
        }
    }
}

/// Counters for one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirStats {
    /// Datagrams sent on.
    pub forwarded: u64,
    /// Datagrams dropped on purpose.
    pub dropped: u64,
    /// Extra copies sent (`RelayConfig::duplicate`).
    pub duplicated: u64,
    /// Datagrams sent on with their last byte flipped (`RelayConfig::tamper`; counted in
    /// `forwarded` too).
    pub tampered: u64,
}

/// Counters for both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Client → server.
    pub to_server: DirStats,
    /// Server → client.
    pub to_client: DirStats,
}

#[derive(Debug, Default)]
struct Counters {
    fwd: [AtomicU64; 2],
    drop: [AtomicU64; 2],
    dup: [AtomicU64; 2],
    tampered: [AtomicU64; 2],
}

/// A running relay; stops when dropped.
#[derive(Debug)]
pub struct LossyRelay {
    local: SocketAddr,
    counters: Arc<Counters>,
    /// Each client's upstream socket, as the server sees it (for [`LossyRelay::inject`]).
    upstreams: Upstreams,
    shaping: Arc<Shaping>,
    _tasks: JoinSet<()>,
}

/// The relay's upstream sockets, one per client, shared with the receiving task.
type Upstreams = Arc<std::sync::Mutex<Vec<Arc<UdpSocket>>>>;

const UP: usize = 0;
const DOWN: usize = 1;

/// The longest a datagram queues at a rate-limited direction before it is dropped instead
/// (a router buffer of a few hundred milliseconds, as on a congested access link).
pub const MAX_QUEUE: Duration = Duration::from_millis(250);

struct Item {
    due: Instant,
    data: Bytes,
    socket: Arc<UdpSocket>,
    to: Option<SocketAddr>,
}

impl LossyRelay {
    /// Starts a relay on `127.0.0.1:0` in front of `server`.
    pub async fn start(server: SocketAddr, cfg: RelayConfig) -> Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), server, cfg).await
    }

    /// Starts a relay listening on `bind` in front of `server`.
    pub async fn start_on(bind: SocketAddr, server: SocketAddr, cfg: RelayConfig) -> Result<Self> {
        let front = Arc::new(UdpSocket::bind(bind).await?);
        let local = front.local_addr()?;
        let counters = Arc::new(Counters::default());
        let mut tasks = JoinSet::new();
        let mut pipes = Vec::new();
        for _ in [UP, DOWN] {
            // Bounded: 8192 datagrams ≈ 40 ms of a 200k packets/s flood; beyond that, drop.
            let (tx, rx) = mpsc::channel::<Item>(8192);
            tasks.spawn(deliver(rx));
            pipes.push(tx);
        }
        let impaired = |d: usize| match cfg.direction {
            Direction::Both => true,
            Direction::ToServer => d == UP,
            Direction::ToClient => d == DOWN,
        };
        let shaping = Arc::new(Shaping {
            loss: [impaired(UP), impaired(DOWN)].map(|i| if i { cfg.loss } else { 0.0 }),
            delay: [impaired(UP), impaired(DOWN)]
                .map(|i| if i { cfg.delay } else { Duration::ZERO }),
            duplicate: [impaired(UP), impaired(DOWN)].map(|i| if i { cfg.duplicate } else { 0.0 }),
            tamper: [impaired(UP), impaired(DOWN)].map(|i| if i { cfg.tamper } else { 0.0 }),
            rng: std::sync::Mutex::new(StdRng::seed_from_u64(cfg.seed)),
            counters: counters.clone(),
            pipes,
            rate: [AtomicU64::new(0), AtomicU64::new(0)],
            busy_until: std::sync::Mutex::new([None; 2]),
        });
        let upstreams = Upstreams::default();
        let shaping_handle = shaping.clone();
        tasks.spawn(front_loop(front, server, shaping, upstreams.clone()));
        Ok(Self {
            local,
            counters,
            upstreams,
            shaping: shaping_handle,
            _tasks: tasks,
        })
    }

    /// Makes `direction` a bottleneck of `bps` bits per second (IP payload, i.e. the
    /// datagrams' bytes), or lifts it with `None`. `Direction::Both` sets both. One bottleneck
    /// per direction, shared by every client of the relay (one access link); the extra copies
    /// of `RelayConfig::duplicate` pass it without taking time.
    pub fn set_rate(&self, direction: Direction, bps: Option<u64>) {
        let dirs: &[usize] = match direction {
            Direction::ToServer => &[UP],
            Direction::ToClient => &[DOWN],
            Direction::Both => &[UP, DOWN],
        };
        for &d in dirs {
            self.shaping.rate[d].store(bps.unwrap_or(0), Ordering::Relaxed);
        }
    }

    /// Sends `data` to the server from every client's upstream socket, unimpaired: to the
    /// server it comes from a connected peer's address, as an attacker on the path (or a
    /// broken middlebox) would send it. Returns how many sockets sent it.
    pub async fn inject(&self, data: &[u8]) -> usize {
        let sockets: Vec<Arc<UdpSocket>> =
            self.upstreams.lock().map(|u| u.clone()).unwrap_or_default();
        let mut sent = 0;
        for socket in sockets {
            if socket.send(data).await.is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// Where clients must send (the address to put in the answer's candidates).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Forwarded and dropped datagrams so far.
    pub fn stats(&self) -> RelayStats {
        let d = |i: usize| DirStats {
            forwarded: self.counters.fwd[i].load(Ordering::Relaxed),
            dropped: self.counters.drop[i].load(Ordering::Relaxed),
            duplicated: self.counters.dup[i].load(Ordering::Relaxed),
            tampered: self.counters.tampered[i].load(Ordering::Relaxed),
        };
        RelayStats {
            to_server: d(UP),
            to_client: d(DOWN),
        }
    }
}

#[derive(Debug)]
struct Shaping {
    loss: [f64; 2],
    duplicate: [f64; 2],
    tamper: [f64; 2],
    delay: [Duration; 2],
    rng: std::sync::Mutex<StdRng>,
    counters: Arc<Counters>,
    pipes: Vec<mpsc::Sender<Item>>,
    /// Bottleneck rate per direction in bit/s (0: none).
    rate: [AtomicU64; 2],
    /// When each direction's bottleneck has sent what is queued.
    busy_until: std::sync::Mutex<[Option<Instant>; 2]>,
}

impl Shaping {
    /// When a datagram of `len` bytes entering `dir` at `now` has passed its bottleneck (`now`
    /// without one), or `None` when the queue before it is full ([`MAX_QUEUE`]).
    fn bottleneck(&self, dir: usize, len: usize, now: Instant) -> Option<Instant> {
        let bps = self.rate[dir].load(Ordering::Relaxed);
        if bps == 0 {
            return Some(now);
        }
        let mut busy = self.busy_until.lock().ok()?;
        let start = busy[dir].map_or(now, |b| b.max(now));
        if start.duration_since(now) > MAX_QUEUE {
            return None;
        }
        let done = start + Duration::from_secs_f64(len as f64 * 8.0 / bps as f64);
        busy[dir] = Some(done);
        Some(done)
    }

    /// Drops or schedules one datagram going `dir`.
    fn pass(&self, dir: usize, data: &[u8], socket: &Arc<UdpSocket>, to: Option<SocketAddr>) {
        let lost = self.loss[dir] > 0.0
            && self
                .rng
                .lock()
                .map(|mut r| r.random_bool(self.loss[dir].min(1.0)))
                .unwrap_or(false);
        // A lost datagram takes no time at the bottleneck; one its queue has no room for is
        // lost there.
        let now = Instant::now();
        let leaves = if lost {
            now
        } else {
            match self.bottleneck(dir, data.len(), now) {
                Some(leaves) => leaves,
                None => {
                    self.counters.drop[dir].fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        };
        let tampered = !lost
            && self.tamper[dir] > 0.0
            && data.len() > 12
            && (128..192).contains(&data[0])
            && self
                .rng
                .lock()
                .map(|mut r| r.random_bool(self.tamper[dir].min(1.0)))
                .unwrap_or(false);
        let data = if tampered {
            let mut forged = data.to_vec();
            if let Some(last) = forged.last_mut() {
                *last ^= 0x01;
            }
            self.counters.tampered[dir].fetch_add(1, Ordering::Relaxed);
            Bytes::from(forged)
        } else {
            Bytes::copy_from_slice(data)
        };
        let item = Item {
            due: leaves + self.delay[dir],
            data,
            socket: socket.clone(),
            to,
        };
        let twice = !lost
            && self.duplicate[dir] > 0.0
            && self
                .rng
                .lock()
                .map(|mut r| r.random_bool(self.duplicate[dir].min(1.0)))
                .unwrap_or(false);
        let copy = twice.then(|| Item {
            due: item.due,
            data: item.data.clone(),
            socket: item.socket.clone(),
            to: item.to,
        });
        if lost || self.pipes[dir].try_send(item).is_err() {
            self.counters.drop[dir].fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.fwd[dir].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(copy) = copy
            && self.pipes[dir].try_send(copy).is_ok()
        {
            self.counters.dup[dir].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Receives from clients; opens one upstream socket (and its reader task) per client address.
async fn front_loop(
    front: Arc<UdpSocket>,
    server: SocketAddr,
    shaping: Arc<Shaping>,
    upstreams: Upstreams,
) {
    let mut upstream: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut readers = JoinSet::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let up = match upstream.get(&from) {
            Some(s) => s.clone(),
            None => {
                let Ok(s) = UdpSocket::bind(SocketAddr::new(server.ip(), 0)).await else {
                    continue;
                };
                if s.connect(server).await.is_err() {
                    continue;
                }
                let s = Arc::new(s);
                readers.spawn(back_loop(s.clone(), front.clone(), from, shaping.clone()));
                upstream.insert(from, s.clone());
                if let Ok(mut all) = upstreams.lock() {
                    all.push(s.clone());
                }
                s
            }
        };
        shaping.pass(UP, &buf[..n], &up, None);
    }
}

/// Server → one client.
async fn back_loop(
    up: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    shaping: Arc<Shaping>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match up.recv(&mut buf).await {
            Ok(n) => shaping.pass(DOWN, &buf[..n], &front, Some(client)),
            // ICMP port unreachable surfaces as ECONNREFUSED on a connected socket: keep going.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Sends items at their due time; a constant delay keeps them in order.
async fn deliver(mut rx: mpsc::Receiver<Item>) {
    while let Some(item) = rx.recv().await {
        tokio::time::sleep_until(item.due).await;
        let _ = match item.to {
            Some(to) => item.socket.send_to(&item.data, to).await,
            None => item.socket.send(&item.data).await,
        };
    }
}

/// Points every UDP ICE candidate of `sdp` at `via` and removes TCP candidates, so the client
/// can only reach the server through the relay.
pub fn rewrite_candidates(sdp: &str, via: SocketAddr) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines() {
        if let Some(rest) = line.strip_prefix("a=candidate:") {
            let mut f: Vec<&str> = rest.split(' ').collect();
            if f.len() < 6 || !f[2].eq_ignore_ascii_case("udp") {
                continue; // TCP (or unparsable): drop it
            }
            let (ip, port) = (via.ip().to_string(), via.port().to_string());
            f[4] = &ip;
            f[5] = &port;
            out.push_str("a=candidate:");
            out.push_str(&f.join(" "));
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out
}
