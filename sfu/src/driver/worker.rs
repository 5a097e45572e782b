//! A worker thread: owns the sessions (str0m `Rtc`s) and rooms pinned to it and runs the
//! "feed one input, drain outputs until Timeout" loop for each. It is a thin driver: the room
//! logic (what to forward to whom, layer switches, keyframe throttling, speaker detection) is
//! `crate::core`; this file only moves datagrams, timers and commands.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, IceCreds, Input, Output};

use super::api::{SessionCreated, SessionKind, SessionRequest, SfuError};
use super::config::SfuConfig;
use super::demux::{Route, UfragTable};
use super::metrics::SfuMetrics;
use super::room::RoomSlot;
use super::session::{self, Session};

/// Longest a worker sleeps without looking at reaping deadlines.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Messages handled per wake-up before timers are looked at again.
const BATCH: usize = 256;

/// A datagram routed to a session on this worker.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub session: u64,
    pub proto: Protocol,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub data: Vec<u8>,
    pub at: Instant,
}

/// A reply channel (answered from this thread, awaited on the async side).
pub(crate) type Reply<T> = tokio::sync::oneshot::Sender<Result<T, SfuError>>;

/// Commands from the HTTP side.
#[derive(Debug)]
pub(crate) enum Command {
    Create {
        id: u64,
        req: SessionRequest,
        reply: Reply<SessionCreated>,
    },
    End {
        room: String,
        id: u64,
        reply: Reply<()>,
    },
    SetLayer {
        room: String,
        id: u64,
        choice: super::api::LayerChoice,
        reply: Reply<()>,
    },
    Room {
        room: String,
        reply: Reply<super::api::RoomInfo>,
    },
    /// WHIP/WHEP `PATCH`: trickle candidates or an ICE restart (RFC 9725 § 4.3).
    Patch {
        room: String,
        id: u64,
        frag: String,
        reply: Reply<Option<String>>,
    },
}

/// Everything a worker receives, through one bounded inbox.
#[derive(Debug)]
pub(crate) enum WorkerMsg {
    Datagram(Datagram),
    /// An ICE-TCP connection from `remote`: frames to send there go to `writer`.
    TcpAttach {
        remote: SocketAddr,
        writer: Sender<Vec<u8>>,
    },
    /// The ICE-TCP connection from `remote` ended (or moved to another worker): drop its
    /// writer, which ends the writer thread and closes the socket.
    TcpDetach {
        remote: SocketAddr,
    },
    Command(Command),
}

/// Shared by all workers.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub config: SfuConfig,
    pub socket: Arc<UdpSocket>,
    pub udp_addr: SocketAddr,
    pub tcp_addr: Option<SocketAddr>,
    pub ufrags: UfragTable,
    pub metrics: SfuMetrics,
    /// Room placement, told when a room empties (rare: never on the media path).
    pub placement: Arc<std::sync::Mutex<super::Placement>>,
}

pub(crate) struct Worker {
    index: usize,
    pub(crate) shared: Shared,
    pub(crate) sessions: HashMap<u64, Session>,
    pub(crate) rooms: HashMap<Arc<str>, RoomSlot>,
    tcp_writers: HashMap<SocketAddr, Sender<Vec<u8>>>,
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
}

impl Worker {
    pub(crate) fn new(index: usize, shared: Shared) -> Self {
        Worker {
            index,
            shared,
            sessions: HashMap::new(),
            rooms: HashMap::new(),
            tcp_writers: HashMap::new(),
            dirty: Vec::with_capacity(64),
            events: Vec::with_capacity(64),
            spare: Vec::with_capacity(64),
            due_rooms: Vec::new(),
            outbox: Vec::with_capacity(4 * super::net::SEND_BATCH),
        }
    }

    /// The worker's loop: returns when the inbox closes (shutdown).
    pub(crate) fn run(mut self, inbox: &Receiver<WorkerMsg>) {
        loop {
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
            self.handle_timeouts(Instant::now());
            self.flush();
        }
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        for id in ids {
            self.remove_session(id, "shutdown");
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
            WorkerMsg::Datagram(d) => self.handle_datagram(&d),
            WorkerMsg::TcpAttach { remote, writer } => {
                self.tcp_writers.insert(remote, writer);
            }
            WorkerMsg::TcpDetach { remote } => {
                self.tcp_writers.remove(&remote);
            }
            WorkerMsg::Command(cmd) => self.handle_command(cmd),
        }
    }

    fn handle_datagram(&mut self, d: &Datagram) {
        let metrics = &self.shared.metrics;
        let Some(session) = self.sessions.get_mut(&d.session) else {
            metrics.dropped("unknown_session");
            return;
        };
        let Ok(receive) = Receive::new(d.proto, d.source, d.destination, &d.data) else {
            metrics.dropped("unparseable");
            return;
        };
        let input = Input::Receive(d.at, receive);
        if !session.rtc.accepts(&input) {
            metrics.dropped("not_accepted");
            return;
        }
        if let Err(err) = session.rtc.handle_input(input) {
            tracing::debug!(session = d.session, error = %err, "input rejected");
            metrics.dropped("rejected");
        }
        self.mark_dirty(d.session);
        self.flush();
    }

    fn handle_timeouts(&mut self, now: Instant) {
        let connect_timeout = self.shared.config.connect_timeout;
        let mut reap = Vec::new();
        for (id, session) in &mut self.sessions {
            if !session.rtc.is_alive() {
                reap.push((*id, "closed"));
                continue;
            }
            if !session.connected && now.duration_since(session.created) > connect_timeout {
                reap.push((*id, "connect_timeout"));
                continue;
            }
            if session.next_timeout <= now {
                if let Err(err) = session.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(session = id, error = %err, "timeout input failed");
                }
                if !session.queued {
                    session.queued = true;
                    self.dirty.push(*id);
                }
            }
        }
        for (id, why) in reap {
            if why == "connect_timeout" {
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
        while let Some(id) = self.dirty.pop() {
            self.drain(id);
            while !self.events.is_empty() {
                // Swap buffers instead of allocating: events may dirty more sessions.
                let mut events =
                    std::mem::replace(&mut self.events, std::mem::take(&mut self.spare));
                for (from, event) in events.drain(..) {
                    self.handle_event(from, event);
                }
                self.spare = events;
            }
        }
        if !self.outbox.is_empty() {
            super::net::send_batch(&self.shared.socket, &mut self.outbox, &self.shared.metrics);
        }
    }

    fn drain(&mut self, id: u64) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        session.queued = false;
        loop {
            match session.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    session.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    if t.proto == Protocol::Udp {
                        self.outbox.push(t);
                        if self.outbox.len() >= 4 * super::net::SEND_BATCH {
                            super::net::send_batch(
                                &self.shared.socket,
                                &mut self.outbox,
                                &self.shared.metrics,
                            );
                        }
                    } else {
                        send_tcp(&self.shared, &self.tcp_writers, t);
                    }
                }
                Ok(Output::Event(event)) => self.events.push((id, event)),
                Err(err) => {
                    tracing::debug!(session = id, error = %err, "session failed");
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
                    tracing::debug!(session = id, room = %session.room, "connected");
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.remove_session(id, "ice_disconnected");
            }
            Event::MediaAdded(added) => self.media_added(id, &added),
            Event::RtpPacket(packet) => self.rtp_in(id, packet),
            Event::KeyframeRequest(request) => self.keyframe_requested(id, &request),
            Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. }) => {
                self.estimate(id, estimate.as_u64());
            }
            Event::MediaEgressStats(stats) => {
                self.count_nacks(id, (stats.mid, stats.rid), stats.nacks, "from_viewers");
            }
            Event::MediaIngressStats(stats) => {
                self.count_nacks(id, (stats.mid, stats.rid), stats.nacks, "to_publishers");
            }
            _ => {}
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Create { id, req, reply } => {
                let room = req.room.clone();
                let result = self.create(id, req);
                if result.is_err() && !self.rooms.contains_key(room.as_str()) {
                    // Placed for this create, which made nothing: forget it.
                    if let Ok(mut placement) = self.shared.placement.lock() {
                        placement.release(&room, self.index);
                    }
                }
                let _ = reply.send(result);
            }
            Command::End { room, id, reply } => {
                let found = self
                    .sessions
                    .get(&id)
                    .is_some_and(|s| &*s.room == room.as_str());
                if found {
                    self.remove_session(id, "deleted");
                    let _ = reply.send(Ok(()));
                } else {
                    let _ = reply.send(Err(SfuError::NoSuchSession));
                }
            }
            Command::SetLayer {
                room,
                id,
                choice,
                reply,
            } => {
                let _ = reply.send(self.set_layer(&room, id, choice));
            }
            Command::Room { room, reply } => {
                let _ = reply.send(self.room_info(&room));
            }
            Command::Patch {
                room,
                id,
                frag,
                reply,
            } => {
                let result = self.patch(&room, id, &frag);
                self.flush();
                let _ = reply.send(result);
            }
        }
    }

    fn create(&mut self, id: u64, req: SessionRequest) -> Result<SessionCreated, SfuError> {
        let config = &self.shared.config;
        if let SessionKind::Play(super::api::PlaySource::Publisher(publisher)) = req.kind {
            let ok = self
                .sessions
                .get(&publisher)
                .is_some_and(|s| s.kind == SessionKind::Publish && &*s.room == req.room.as_str());
            if !ok {
                return Err(SfuError::NoSuchPublisher);
            }
        }
        if usize::try_from(self.shared.metrics.peers.get()).unwrap_or(0) >= config.max_peers {
            return Err(SfuError::Full("peers on this node"));
        }
        let in_room = self
            .rooms
            .get(req.room.as_str())
            .map_or(0, RoomSlot::session_count);
        if in_room >= config.max_peers_per_room {
            return Err(SfuError::Full("peers in this room"));
        }
        let now = Instant::now();
        let ufrag = format!("hc{id:x}{:04x}", rand_u16(id));
        let creds = IceCreds {
            ufrag: ufrag.clone(),
            pass: random_password(id),
        };
        let (rtc, answer) = session::accept(
            config,
            &req.kind,
            &req.offer,
            creds,
            self.shared.udp_addr,
            self.shared.tcp_addr,
            now,
        )?;
        let pts = Session::negotiated_pts(&rtc);
        let room: Arc<str> = match self.rooms.get_key_value(req.room.as_str()) {
            Some((key, _)) => key.clone(),
            None => {
                // The placement may have been released since this create was routed here.
                let claimed = match self.shared.placement.lock() {
                    Ok(mut placement) => placement.claim(&req.room, self.index),
                    Err(_) => false,
                };
                if !claimed {
                    return Err(SfuError::Busy);
                }
                let key: Arc<str> = Arc::from(req.room.as_str());
                self.rooms
                    .insert(key.clone(), RoomSlot::new(&self.shared.config));
                key
            }
        };
        let session = Session {
            id,
            room: room.clone(),
            kind: req.kind.clone(),
            label: req.label,
            ufrag: ufrag.clone(),
            rtc,
            created: now,
            connected: false,
            next_timeout: now,
            rx: HashMap::new(),
            tracks: HashMap::new(),
            layers: HashMap::new(),
            announced: Vec::new(),
            rids_seen: Vec::new(),
            queued: false,
            pts,
            nacks_seen: HashMap::new(),
            remote_ufrag: session::attribute(&req.offer, "ice-ufrag").unwrap_or_default(),
            candidate_lines: answer
                .lines()
                .filter(|l| l.starts_with("a=candidate:"))
                .map(str::to_owned)
                .collect(),
            tx_audio: None,
            tx_video: None,
        };
        self.sessions.insert(id, session);
        if let Some(slot) = self.rooms.get_mut(&room) {
            slot.add_session(id);
        }
        self.shared.ufrags.insert(
            &ufrag,
            Route {
                worker: self.index,
                session: id,
            },
        );
        self.shared.metrics.peers.inc();
        self.mark_dirty(id);
        self.flush();
        Ok(SessionCreated {
            session: id,
            answer,
        })
    }

    /// Applies a trickle-ICE SDP fragment. New `ice-ufrag`/`ice-pwd` mean an ICE restart: the
    /// session gets fresh local credentials (returned as the answer fragment, with our
    /// candidates); the same credentials with candidates are trickle (nothing to answer: an
    /// ICE-lite server learns the client's address from its checks anyway).
    fn patch(&mut self, room: &str, id: u64, frag: &str) -> Result<Option<String>, SfuError> {
        let Some(session) = self.sessions.get_mut(&id) else {
            return Err(SfuError::NoSuchSession);
        };
        if &*session.room != room {
            return Err(SfuError::NoSuchSession);
        }
        let parsed = session::parse_frag(frag)?;
        for candidate in parsed.candidates {
            session.rtc.add_remote_candidate(candidate);
        }
        let restart = match (&parsed.ufrag, &parsed.pwd) {
            (Some(ufrag), Some(pwd)) if *ufrag != session.remote_ufrag => Some(IceCreds {
                ufrag: ufrag.clone(),
                pass: pwd.clone(),
            }),
            (Some(_), None) | (None, Some(_)) => {
                return Err(SfuError::BadOffer(
                    "ice-ufrag and ice-pwd go together".into(),
                ));
            }
            _ => None,
        };
        let answer = match restart {
            Some(remote) => {
                let ufrag = format!("hc{id:x}{:04x}", rand_u16(id ^ 0x5a5a));
                let local = IceCreds {
                    ufrag: ufrag.clone(),
                    pass: random_password(id),
                };
                let mut api = session.rtc.direct_api();
                api.set_local_ice_credentials(local.clone());
                api.set_remote_ice_credentials(remote.clone());
                self.shared.ufrags.remove(&session.ufrag);
                self.shared.ufrags.insert(
                    &ufrag,
                    Route {
                        worker: self.index,
                        session: id,
                    },
                );
                session.ufrag = ufrag;
                session.remote_ufrag = remote.ufrag;
                let mut text = format!(
                    "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
                    local.ufrag, local.pass
                );
                for line in &session.candidate_lines {
                    text.push_str(line);
                    text.push_str("\r\n");
                }
                Some(text)
            }
            None => None,
        };
        if !session.queued {
            session.queued = true;
            self.dirty.push(id);
        }
        Ok(answer)
    }

    /// Turns str0m's cumulative per-stream NACK counts into counter increments.
    fn count_nacks(
        &mut self,
        id: u64,
        key: (str0m::media::Mid, Option<str0m::media::Rid>),
        total: u64,
        direction: &'static str,
    ) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let seen = session.nacks_seen.entry(key).or_insert(0);
        if total > *seen {
            self.shared
                .metrics
                .nacks
                .with_label_values(&[direction])
                .inc_by(total - *seen);
            *seen = total;
        }
    }

    fn mark_dirty(&mut self, id: u64) {
        if let Some(session) = self.sessions.get_mut(&id)
            && !session.queued
        {
            session.queued = true;
            self.dirty.push(id);
        }
    }

    pub(crate) fn remove_session(&mut self, id: u64, why: &'static str) {
        let Some(mut session) = self.sessions.remove(&id) else {
            return;
        };
        session.rtc.disconnect();
        self.shared.ufrags.remove(&session.ufrag);
        self.shared.metrics.peers.dec();
        let tracks = i64::try_from(session.announced.len()).unwrap_or(0);
        self.shared.metrics.tracks.sub(tracks);
        tracing::debug!(session = id, room = %session.room, why, "session removed");
        let now = Instant::now();
        let empty = match self.rooms.get_mut(&session.room) {
            Some(slot) => {
                slot.remove_session(id, now);
                slot.session_count() == 0
            }
            None => false,
        };
        if empty {
            self.rooms.remove(&session.room);
            if let Ok(mut placement) = self.shared.placement.lock() {
                placement.release(&session.room, self.index);
            }
        }
        // Viewers of this publisher may need a keyframe from the next source.
        self.pump_room(&session.room);
    }
}

/// Sends one ICE-TCP transmit through its connection's writer (RFC 4571 framing is added
/// there).
fn send_tcp(shared: &Shared, tcp: &HashMap<SocketAddr, Sender<Vec<u8>>>, t: str0m::net::Transmit) {
    match tcp.get(&t.destination) {
        Some(writer) => {
            // The datagram's own buffer moves to the writer thread: no copy.
            if writer.send(t.contents.into()).is_err() {
                shared.metrics.send_errors.inc();
            }
        }
        None => shared.metrics.send_errors.inc(),
    }
}

/// A 16-bit value mixed from `seed` and the clock, for ufrag uniqueness across restarts.
fn rand_u16(seed: u64) -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (u64::from(nanos) ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) as u16
}

/// An ICE password (≥ 22 characters, RFC 8839 § 5.4), unguessable: 128 random bits.
fn random_password(seed: u64) -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to a mix that is at least unique.
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8..].copy_from_slice(&u64::from(rand_u16(seed)).to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
