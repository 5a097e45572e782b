//! A worker thread: owns the sessions (str0m `Rtc`s) and rooms pinned to it and runs the
//! "feed one input, drain outputs until Timeout" loop for each. It is a thin driver: the room
//! logic (what to forward to whom, layer switches, keyframe throttling, speaker detection) is
//! `crate::core`; this file only moves datagrams and timers (commands are `command`).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output};

use super::command::Command;
use super::config::SfuConfig;
use super::demux::UfragTable;
use super::ingress::{Batch, Recycler};
use super::metrics::{DropReason, SessionEnd, SfuMetrics};
use super::room::RoomSlot;
use super::session::Session;

/// Longest a worker sleeps without looking at reaping deadlines.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// How often a worker adds its thread-local metrics to the shared ones (a scrape sees them
/// at most this late).
const METRICS_EVERY: Duration = Duration::from_secs(1);
/// Messages handled per wake-up before timers are looked at again.
const BATCH: usize = 256;
/// Datagrams taken in before the sessions they wrote to are drained and sent. When the inbox
/// holds more (the worker fell behind), the viewers' `Rtc`s are drained once for several
/// incoming packets instead of once per receive call: str0m's fixed cost per `poll_output`
/// round (ICE, DTLS, every timer) is shared and `sendmmsg` calls fill up. Small, so the first
/// datagram's copies wait for at most a few more ingress steps (~10–20 µs each).
const FLUSH_EVERY: usize = 8;
/// Timeouts handled inside one drain of a session before it waits for the timer pass (a
/// keyframe burst to one viewer is ~12 packets, one timeout each).
pub const MAX_REPOLLS: u32 = 64;

/// An ICE-TCP datagram routed to a session on this worker (UDP comes in [`Batch`]es).
#[derive(Debug)]
pub(crate) struct Datagram {
    pub session: u64,
    pub source: SocketAddr,
    pub data: Vec<u8>,
    pub at: Instant,
}

/// Everything a worker receives, through one bounded inbox.
#[derive(Debug)]
pub(crate) enum WorkerMsg {
    /// UDP datagrams from one receive call (handed back through `Shared::recycler`).
    Batch(Batch),
    Datagram(Datagram),
    /// An ICE-TCP connection from `remote` (numbered `conn` on this node): frames to send
    /// there go to `writer`.
    TcpAttach {
        remote: SocketAddr,
        conn: u64,
        writer: SyncSender<Vec<u8>>,
    },
    /// The ICE-TCP connection `conn` from `remote` ended (or moved to another worker): drop
    /// its writer, which ends the writer thread and closes the socket. A newer connection
    /// from the same address (a client reconnecting from the same port) keeps its own.
    TcpDetach {
        remote: SocketAddr,
        conn: u64,
    },
    Command(Command),
    /// This session's last address went to another session (`demux::AddrTable::take_orphan`).
    Orphaned(u64),
}

/// Shared by all workers.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub config: SfuConfig,
    pub socket: Arc<UdpSocket>,
    pub udp_addr: SocketAddr,
    pub tcp_addr: Option<SocketAddr>,
    /// What peers address their packets to (our host candidates), given to str0m as each
    /// datagram's destination.
    pub local: super::local::LocalAddrs,
    pub ufrags: UfragTable,
    pub metrics: SfuMetrics,
    /// Where processed UDP batches go back to the receiving thread.
    pub recycler: Recycler,
    /// Room placement, told when a room empties (rare: never on the media path).
    pub placement: Arc<std::sync::Mutex<super::placement::Placement>>,
    /// Sessions on the node, counted against `max_peers` across workers.
    pub peer_slots: Arc<PeerSlots>,
    /// Set by `Sfu::shutdown`: each worker ends its sessions and returns (seen within
    /// `MAX_SLEEP`).
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    /// Room events for watchers (`events`).
    pub notices: super::events::Notices,
}

/// The node-wide peer count against `max_peers`: a create takes a slot before it builds its
/// session (workers create concurrently, so checking a count and raising it later would let
/// each of them pass the last free slot) and gives it back if it fails or when the session
/// ends.
#[derive(Debug)]
pub(crate) struct PeerSlots {
    used: std::sync::atomic::AtomicUsize,
    max: usize,
}

impl PeerSlots {
    pub(crate) fn new(max: usize) -> Self {
        PeerSlots {
            used: std::sync::atomic::AtomicUsize::new(0),
            max,
        }
    }

    /// Takes a slot; `false` when all `max` are taken.
    pub(crate) fn take(&self) -> bool {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        (self.used)
            .fetch_update(AcqRel, Acquire, |n| (n < self.max).then_some(n + 1))
            .is_ok()
    }

    /// Gives a taken slot back.
    pub(crate) fn give_back(&self) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        let _ = (self.used).fetch_update(AcqRel, Acquire, |n| n.checked_sub(1));
    }
}

pub(crate) struct Worker {
    pub(crate) index: usize,
    pub(crate) shared: Shared,
    /// By session id: sequential and server-assigned, so the fast id hash (no SipHash per
    /// datagram and per forwarded packet).
    pub(crate) sessions: crate::core::IdMap<u64, Session>,
    pub(crate) rooms: HashMap<Arc<str>, RoomSlot>,
    tcp_writers: HashMap<SocketAddr, (u64, SyncSender<Vec<u8>>)>,
    /// Sessions whose `Rtc` got input and must be drained.
    pub(crate) dirty: Vec<u64>,
    /// Events drained from sessions, processed once the session is no longer borrowed.
    events: Vec<(u64, Event)>,
    /// The other half of the event double buffer.
    spare: Vec<(u64, Event)>,
    /// Rooms whose timer is due (scratch, reused every wake).
    due_rooms: Vec<Arc<str>>,
    /// UDP transmits waiting for the next `sendmmsg` (flushed at the end of every `flush`).
    outbox: Vec<str0m::net::Transmit>,
    /// Sends the outbox (reused `sendmmsg` headers).
    sender: super::net::BatchSender,
    /// Datagrams taken in since the last flush (see [`FLUSH_EVERY`]).
    unflushed: usize,
    /// When those arrived (per batch: its receipt time and size), timed at the flush.
    arrivals: Vec<(Instant, u32)>,
    /// Those times, kept on this thread and added to the shared histogram every
    /// [`METRICS_EVERY`] (no shared atomics per datagram).
    receive_to_send: prometheus::local::LocalHistogram,
    /// When `receive_to_send` was last added to the shared histogram.
    metrics_flushed: Instant,
}

impl Worker {
    pub(crate) fn new(index: usize, shared: Shared) -> Self {
        let receive_to_send = shared.metrics.receive_to_send.local();
        Worker {
            index,
            shared,
            sessions: crate::core::IdMap::default(),
            rooms: HashMap::new(),
            tcp_writers: HashMap::new(),
            dirty: Vec::with_capacity(64),
            events: Vec::with_capacity(64),
            spare: Vec::with_capacity(64),
            due_rooms: Vec::new(),
            outbox: Vec::with_capacity(4 * super::net::SEND_BATCH),
            sender: super::net::BatchSender::new(),
            unflushed: 0,
            arrivals: Vec::with_capacity(64),
            receive_to_send,
            metrics_flushed: Instant::now(),
        }
    }

    /// The worker's loop: returns at shutdown (the stop flag, or the inbox closed).
    pub(crate) fn run(mut self, inbox: &Receiver<WorkerMsg>) {
        while !self.shared.stop.load(std::sync::atomic::Ordering::Relaxed) {
            let now = Instant::now();
            let wait = self.next_deadline(now).saturating_duration_since(now);
            match inbox.recv_timeout(wait) {
                Ok(msg) => {
                    self.handle(msg);
                    for _ in 0..BATCH {
                        match inbox.try_recv() {
                            Ok(msg) => self.handle(msg),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            self.handle_timeouts(now);
            self.flush();
            if now.saturating_duration_since(self.metrics_flushed) >= METRICS_EVERY {
                self.receive_to_send.flush();
                self.metrics_flushed = now;
            }
        }
        self.receive_to_send.flush();
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        for id in ids {
            self.remove_session(id, SessionEnd::Shutdown);
        }
    }

    fn next_deadline(&self, now: Instant) -> Instant {
        let mut deadline = now + MAX_SLEEP;
        for session in self.sessions.values() {
            deadline = deadline.min(session.next_timeout);
        }
        for room in self.rooms.values() {
            if let Some(t) = room.poll_timeout() {
                deadline = deadline.min(t);
            }
        }
        deadline
    }

    fn handle(&mut self, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Batch(batch) => {
                // Sessions written to by several datagrams are drained once and their packets
                // share `sendmmsg` calls, every FLUSH_EVERY datagrams, also inside a batch (as
                // FLUSH_EVERY's bound says: a whole `recvmmsg` batch, up to 32 video packets
                // with 25 copies each, is far more than "a few ingress steps"); the run loop
                // flushes what is left when the inbox is empty.
                let mut pending = 0;
                for (session, source, data) in batch.iter() {
                    let at = batch.at;
                    self.receive(session, Protocol::Udp, source, data, at);
                    self.unflushed += 1;
                    pending += 1;
                    if self.unflushed >= FLUSH_EVERY {
                        self.arrivals.push((at, pending));
                        pending = 0;
                        self.flush();
                    }
                }
                if pending > 0 {
                    self.arrivals.push((batch.at, pending));
                }
                super::ingress::recycle(&self.shared.recycler, batch);
            }
            WorkerMsg::Datagram(d) => {
                self.receive(d.session, Protocol::Tcp, d.source, &d.data, d.at);
                self.unflushed += 1;
                self.arrivals.push((d.at, 1));
                if self.unflushed >= FLUSH_EVERY {
                    self.flush();
                }
            }
            WorkerMsg::TcpAttach {
                remote,
                conn,
                writer,
            } => {
                self.tcp_writers.insert(remote, (conn, writer));
            }
            WorkerMsg::TcpDetach { remote, conn } => {
                tcp_detach(&mut self.tcp_writers, remote, conn);
            }
            WorkerMsg::Command(cmd) => self.handle_command(cmd),
            WorkerMsg::Orphaned(id) => {
                if self.sessions.contains_key(&id) {
                    self.remove_session(id, SessionEnd::AddressTaken);
                }
            }
        }
    }

    /// Feeds one datagram to its session's `Rtc` and drains that session; the sessions its
    /// events write to are drained and sent by the next flush (once per wake-up, or every
    /// [`FLUSH_EVERY`] datagrams).
    fn receive(&mut self, id: u64, proto: Protocol, source: SocketAddr, data: &[u8], at: Instant) {
        let metrics = &self.shared.metrics;
        let Some(session) = self.sessions.get_mut(&id) else {
            metrics.dropped(DropReason::UnknownSession);
            return;
        };
        // Not the socket's own address: with `0.0.0.0` bound or behind 1:1 NAT, str0m's ICE
        // agent discards a check addressed to anything but one of our candidates.
        let destination = self.shared.local.destination(proto, source);
        let Ok(receive) = Receive::new(proto, source, destination, data) else {
            metrics.dropped(DropReason::Unparseable);
            return;
        };
        if let Some((ssrc, seq)) = super::replay::rtp_ssrc_seq(data)
            && (session.rx.get(&ssrc.into())).is_some_and(|s| s.replay.is_replay(seq))
        {
            metrics.dropped(DropReason::Replayed);
            return;
        }
        let input = Input::Receive(at, receive);
        if !session.rtc.accepts(&input) {
            metrics.dropped(DropReason::NotAccepted);
            return;
        }
        if let Err(err) = session.rtc.handle_input(input) {
            tracing::debug!(session = id, error = %err, "input rejected");
            metrics.dropped(DropReason::Rejected);
        }
        // str0m drops what fails SRTP authentication silently; the provider counted it.
        let forged = super::srtp_audit::take_failures();
        if forged > 0 {
            metrics.dropped_many(DropReason::Unauthenticated, forged);
        }
        // str0m holds one received RTP packet until the next `poll_output` (RTP mode), so the
        // session is drained now; the sessions its events touch wait for the flush.
        self.drain_and_handle(id);
    }

    fn handle_timeouts(&mut self, now: Instant) {
        let connect_timeout = self.shared.config.connect_timeout;
        let mut reap = Vec::new();
        for (id, session) in &mut self.sessions {
            if !session.rtc.is_alive() {
                reap.push((
                    *id,
                    if session.failed {
                        SessionEnd::Failed
                    } else {
                        SessionEnd::Closed
                    },
                ));
                continue;
            }
            if !session.connected && now.duration_since(session.created) > connect_timeout {
                reap.push((*id, SessionEnd::ConnectTimeout));
                continue;
            }
            if session.next_timeout <= now {
                if let Err(err) = session.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(session = id, error = %err, "timeout input failed");
                }
                session.queue(&mut self.dirty);
            }
        }
        for (id, why) in reap {
            if why == SessionEnd::ConnectTimeout {
                self.shared.metrics.ice_failures.inc();
            }
            self.remove_session(id, why);
        }
        // Only rooms whose timer is due; the scratch list keeps its capacity across wakes.
        let mut due = std::mem::take(&mut self.due_rooms);
        due.extend(
            self.rooms
                .iter()
                .filter(|(_, slot)| slot.poll_timeout().is_some_and(|t| t <= now))
                .map(|(room, _)| room.clone()),
        );
        for room in due.drain(..) {
            self.room_timeout(&room, now);
        }
        self.due_rooms = due;
    }

    /// Drains every dirty session until each reports its next timeout, processing the events
    /// that come out (which may dirty further sessions, e.g. forwarded media).
    pub(crate) fn flush(&mut self) {
        self.unflushed = 0;
        while let Some(id) = self.dirty.pop() {
            self.drain_and_handle(id);
        }
        if !self.outbox.is_empty() {
            self.sender
                .send(&self.shared.socket, &mut self.outbox, &self.shared.metrics);
        }
        if !self.arrivals.is_empty() {
            let now = Instant::now();
            for (at, n) in self.arrivals.drain(..) {
                let waited = now.saturating_duration_since(at).as_secs_f64();
                for _ in 0..n {
                    self.receive_to_send.observe(waited);
                }
            }
        }
    }

    /// Drains session `id` and processes its events (which may dirty other sessions).
    fn drain_and_handle(&mut self, id: u64) {
        self.drain(id);
        while !self.events.is_empty() {
            // Swap buffers instead of allocating: events may dirty more sessions.
            let mut events = std::mem::replace(&mut self.events, std::mem::take(&mut self.spare));
            for (from, event) in events.drain(..) {
                self.handle_event(from, event);
            }
            self.spare = events;
        }
    }

    fn drain(&mut self, id: u64) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        session.queued = false;
        let mut repolls = 0;
        loop {
            match session.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    // str0m's pacer takes one queued packet per timeout and asks for the next
                    // one a microsecond later: give those timeouts here, so what was written
                    // leaves in this flush instead of one worker pass per packet later. Only
                    // due ones, at the clock's time: str0m never sees time run backwards.
                    if repolls < MAX_REPOLLS {
                        let now = Instant::now();
                        if t <= now {
                            repolls += 1;
                            if session.rtc.handle_input(Input::Timeout(now)).is_ok() {
                                continue;
                            }
                        }
                    }
                    session.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    if t.proto == Protocol::Udp {
                        self.outbox.push(t);
                        if self.outbox.len() >= 4 * super::net::SEND_BATCH {
                            self.sender.send(
                                &self.shared.socket,
                                &mut self.outbox,
                                &self.shared.metrics,
                            );
                        }
                    } else {
                        send_tcp(&self.shared.metrics, &self.tcp_writers, t);
                    }
                }
                Ok(Output::Event(event)) => self.events.push((id, event)),
                Err(err) => {
                    tracing::debug!(session = id, error = %err, "session failed");
                    session.failed = true;
                    session.rtc.disconnect();
                    session.next_timeout = Instant::now();
                    break;
                }
            }
        }
    }

    fn handle_event(&mut self, id: u64, event: Event) {
        match event {
            Event::Connected => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.connected = true;
                    tracing::info!(
                        session = id,
                        room = %session.room,
                        who = %session.label,
                        after_ms = session.created.elapsed().as_millis(),
                        "media session connected"
                    );
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.remove_session(id, SessionEnd::IceDisconnected);
            }
            Event::MediaAdded(added) => self.media_added(id, &added),
            Event::RtpPacket(packet) => self.rtp_in(id, packet),
            Event::KeyframeRequest(request) => self.keyframe_requested(id, &request),
            Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. }) => {
                self.estimate(id, estimate.as_u64());
            }
            Event::MediaEgressStats(stats) => {
                let report = (stats.nacks, stats.rtt, stats.loss);
                self.stream_stats(id, (stats.mid, stats.rid), report, "from_viewers");
            }
            Event::MediaIngressStats(stats) => {
                let report = (stats.nacks, stats.rtt, stats.loss);
                self.stream_stats(id, (stats.mid, stats.rid), report, "to_publishers");
            }
            _ => {}
        }
    }

    /// Keeps what str0m's stats say of one stream: its cumulative NACK count becomes a
    /// counter increment (NACKs `direction`), its round-trip time and fraction lost are kept
    /// (a report without one keeps the previous value).
    fn stream_stats(
        &mut self,
        id: u64,
        key: (str0m::media::Mid, Option<str0m::media::Rid>),
        (nacks, rtt, loss): (u64, Option<Duration>, Option<f32>),
        direction: &'static str,
    ) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let seen = session.streams_seen.entry(key).or_default();
        if nacks > seen.nacks {
            self.shared
                .metrics
                .nacks
                .with_label_values(&[direction])
                .inc_by(nacks - seen.nacks);
            seen.nacks = nacks;
        }
        seen.rtt = rtt.or(seen.rtt);
        seen.loss = loss.filter(|l| l.is_finite()).or(seen.loss);
    }

    pub(crate) fn mark_dirty(&mut self, id: u64) {
        if let Some(session) = self.sessions.get_mut(&id) {
            session.queue(&mut self.dirty);
        }
    }
}

/// Drops connection `conn`'s writer for `remote`, unless a newer connection from that address
/// has replaced it.
pub(super) fn tcp_detach(
    writers: &mut HashMap<SocketAddr, (u64, SyncSender<Vec<u8>>)>,
    remote: SocketAddr,
    conn: u64,
) {
    if writers.get(&remote).is_some_and(|(c, _)| *c == conn) {
        writers.remove(&remote);
    }
}

/// Sends one ICE-TCP transmit through its connection's writer (RFC 4571 framing is added
/// there). The writer's queue is bounded ([`TCP_WRITE_QUEUE`](super::tcp::TCP_WRITE_QUEUE)):
/// when a stalled connection has filled it the datagram is dropped and counted in
/// `send_dropped`, like a full UDP send buffer; the worker never waits for one viewer.
pub(super) fn send_tcp(
    metrics: &SfuMetrics,
    tcp: &HashMap<SocketAddr, (u64, SyncSender<Vec<u8>>)>,
    t: str0m::net::Transmit,
) {
    let Some((_, writer)) = tcp.get(&t.destination) else {
        metrics.send_errors.inc();
        return;
    };
    // The datagram's own buffer moves to the writer thread: no copy.
    let len = t.contents.len() as u64;
    match writer.try_send(t.contents.into()) {
        Ok(()) => {
            metrics.sent_datagrams.inc();
            metrics.sent_bytes.inc_by(len);
        }
        Err(TrySendError::Full(_)) => metrics.send_dropped.inc(),
        Err(TrySendError::Disconnected(_)) => metrics.send_errors.inc(),
    }
}
