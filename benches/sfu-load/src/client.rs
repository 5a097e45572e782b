//! WebRTC clients built on str0m (the SFU's own library, used from the other side: full ICE,
//! controlling, no ICE-lite) and the threads that drive them.
//!
//! Each client owns one non-blocking UDP socket on 127.0.0.x; a client thread owns ~50 clients
//! and one epoll instance (mio), and runs str0m's "one input, then drain outputs until
//! Timeout" loop for each. Publishers write synthetic VP8 and Opus in RTP mode; subscribers
//! count what arrives, compute latency from the payload's send stamp and the kernel's
//! SO_TIMESTAMPNS receive stamp (so time the client thread takes to get to a datagram is not
//! charged to the SFU), and record sequence numbers for loss.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd as _, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, setsockopt, sockopt};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::hub::Hub;
use crate::media::{self, AUDIO_CLOCK, VIDEO_CLOCK, Vp8Packet};

/// Counters shared by all client threads and the orchestrator.
#[derive(Debug, Default)]
pub struct Shared {
    /// Threads exit.
    pub stop: AtomicBool,
    /// The measurement window is open.
    pub measuring: AtomicBool,
    /// Clients whose ICE + DTLS completed.
    pub connected: AtomicUsize,
    /// Subscribers that received video / audio.
    pub subs_with_video: AtomicUsize,
    pub subs_with_audio: AtomicUsize,
    /// RTP packets written by publishers (total, in the window).
    pub sent: AtomicU64,
    pub sent_window: AtomicU64,
    /// RTP packets received by subscribers (total, in the window).
    pub received: AtomicU64,
    pub received_window: AtomicU64,
    /// Keyframe requests (PLI/FIR) publishers received.
    pub keyframe_requests: AtomicU64,
    /// Keyframes publishers sent.
    pub keyframes: AtomicU64,
    /// ICE disconnections and str0m errors.
    pub failures: AtomicU64,
    /// Datagrams the client sockets could not send.
    pub send_errors: AtomicU64,
}

/// What a publisher sends.
#[derive(Debug, Clone, Copy)]
pub struct MediaConfig {
    /// Video bitrate, kbit/s (of payload).
    pub video_kbps: u32,
    /// Frames per second.
    pub fps: u32,
    /// A keyframe every this many frames (and on request).
    pub keyframe_every: u64,
}

impl MediaConfig {
    /// Payload bytes of a delta frame (the bitrate over the frame rate); keyframes are 3×.
    /// A frame goes out as full `VIDEO_PAYLOAD` packets and a last, shorter one, as an
    /// encoder's packetizer sends it (so str0m's probe padding finds small packets to resend,
    /// as with real video).
    pub fn frame_bytes(&self) -> usize {
        let bytes = self.video_kbps as usize * 1000 / 8 / self.fps.max(1) as usize;
        bytes.max(media::MIN_VIDEO_PAYLOAD)
    }
}

/// What one client thread measured in the window.
#[derive(Debug, Default)]
pub struct ThreadReport {
    /// Receive − send, nanoseconds, per video packet of delta frames, of keyframes, and per
    /// audio packet.
    pub latency_video_ns: Vec<u64>,
    pub latency_keyframe_ns: Vec<u64>,
    pub latency_audio_ns: Vec<u64>,
    /// Per subscriber stream: (expected by sequence span, distinct received).
    pub streams: Vec<(u64, u64)>,
}

struct Publisher {
    video_mid: Mid,
    audio_mid: Mid,
    vp8: Pt,
    opus: Pt,
    config: MediaConfig,
    frame_interval: Duration,
    next_video: Instant,
    next_audio: Instant,
    frame: u64,
    force_keyframe: bool,
    video_seq: u64,
    audio_seq: u64,
    video_ts: u32,
    audio_ts: u32,
    picture_id: u16,
    tl0: u8,
}

struct Subscriber {
    opus: Option<Pt>,
    got_video: bool,
    got_audio: bool,
    /// Sequence numbers received in the window: video, audio.
    seqs: [HashSet<u64>; 2],
}

enum Role {
    Publisher(Box<Publisher>),
    Subscriber(Subscriber),
}

/// One peer connection with its socket.
pub struct Client {
    rtc: Rtc,
    socket: mio::net::UdpSocket,
    local: SocketAddr,
    next_timeout: Instant,
    connected: bool,
    alive: bool,
    role: Role,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("local", &self.local)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

/// A new str0m peer on a fresh socket bound to `ip`, its offer posted to `path`, the answer
/// applied. Returns the peer, its socket, the media ids (video, audio) and the session id.
fn negotiate(
    hub: &Hub,
    path: &str,
    ip: IpAddr,
    dir: Direction,
) -> anyhow::Result<(Rtc, std::net::UdpSocket, [Mid; 2], u64)> {
    let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))
        .with_context(|| format!("binding a client socket on {ip}"))?;
    socket.set_nonblocking(true)?;
    setsockopt(socket.as_raw_fd(), sockopt::ReceiveTimestampns, &true)?;
    let local = socket.local_addr()?;
    let now = Instant::now();
    let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut sdp = rtc.sdp_api();
    let stream = Some("sfu-load".to_owned());
    let video = sdp.add_media(MediaKind::Video, dir, stream.clone(), None, None);
    let audio = sdp.add_media(MediaKind::Audio, dir, stream, None, None);
    let (offer, pending) = sdp.apply().context("no SDP change to apply")?;
    let (answer, id) = hub.offer(path, &offer.to_sdp_string())?;
    let answer = SdpAnswer::from_sdp_string(&answer).context("parsing the SDP answer")?;
    rtc.sdp_api().accept_answer(pending, answer)?;
    Ok((rtc, socket, [video, audio], id))
}

fn pt_of(rtc: &Rtc, codec: Codec) -> Option<Pt> {
    rtc.codec_config()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
}

impl Client {
    /// A WHIP publisher in `room`; returns it with its session id.
    pub fn publisher(
        hub: &Hub,
        room: &str,
        ip: IpAddr,
        config: MediaConfig,
        seed: u64,
    ) -> anyhow::Result<(Client, u64)> {
        let (rtc, socket, [video_mid, audio_mid], id) =
            negotiate(hub, &format!("/whip/{room}"), ip, Direction::SendOnly)?;
        let vp8 = pt_of(&rtc, Codec::Vp8).context("VP8 not negotiated")?;
        let opus = pt_of(&rtc, Codec::Opus).context("Opus not negotiated")?;
        let now = Instant::now();
        let publisher = Publisher {
            video_mid,
            audio_mid,
            vp8,
            opus,
            config,
            frame_interval: Duration::from_secs_f64(1.0 / f64::from(config.fps.max(1))),
            next_video: now,
            next_audio: now,
            frame: 0,
            force_keyframe: false,
            video_seq: 1000 + seed * 7,
            audio_seq: 2000 + seed * 11,
            video_ts: (seed as u32).wrapping_mul(0x9e37_79b9),
            audio_ts: (seed as u32).wrapping_mul(0x85eb_ca6b),
            picture_id: (seed as u16).wrapping_mul(911) & 0x7fff,
            tl0: seed as u8,
        };
        Ok((
            Client::new(rtc, socket, Role::Publisher(Box::new(publisher)))?,
            id,
        ))
    }

    /// A WHEP subscriber of `publisher` in `room`.
    pub fn subscriber(hub: &Hub, room: &str, publisher: u64, ip: IpAddr) -> anyhow::Result<Client> {
        let (rtc, socket, _, _) = negotiate(
            hub,
            &format!("/whep/{room}/{publisher}"),
            ip,
            Direction::RecvOnly,
        )?;
        let opus = pt_of(&rtc, Codec::Opus);
        let sub = Subscriber {
            opus,
            got_video: false,
            got_audio: false,
            seqs: [HashSet::new(), HashSet::new()],
        };
        Client::new(rtc, socket, Role::Subscriber(sub))
    }

    fn new(rtc: Rtc, socket: std::net::UdpSocket, role: Role) -> anyhow::Result<Client> {
        let local = socket.local_addr()?;
        Ok(Client {
            rtc,
            socket: mio::net::UdpSocket::from_std(socket),
            local,
            next_timeout: Instant::now(),
            connected: false,
            alive: true,
            role,
        })
    }

    fn next_wake(&self) -> Instant {
        let mut t = self.next_timeout;
        if let Role::Publisher(p) = &self.role
            && self.connected
        {
            t = t.min(p.next_video).min(p.next_audio);
        }
        t
    }

    /// Timers and media due at `now`.
    fn on_time(&mut self, now: Instant, shared: &Shared) {
        if !self.alive {
            return;
        }
        if self.next_timeout <= now {
            if let Err(err) = self.rtc.handle_input(Input::Timeout(now)) {
                self.fail(shared, &err.to_string());
                return;
            }
            self.drain(None, shared, None);
        }
        if !self.connected {
            return;
        }
        let Role::Publisher(p) = &mut self.role else {
            return;
        };
        // Far behind (the thread was starved): skip ahead rather than burst.
        if now.saturating_duration_since(p.next_video) > Duration::from_millis(500) {
            p.next_video = now;
            p.next_audio = now;
        }
        let due_video = p.next_video <= now;
        let due_audio = p.next_audio <= now;
        if due_video || due_audio {
            if let Err(err) = self.rtc.handle_input(Input::Timeout(now)) {
                self.fail(shared, &err.to_string());
                return;
            }
            self.drain(None, shared, None);
        }
        if due_video {
            self.send_frame(now, shared);
        }
        if due_audio {
            self.send_audio(now, shared);
        }
    }

    fn send_frame(&mut self, now: Instant, shared: &Shared) {
        let Role::Publisher(p) = &mut self.role else {
            return;
        };
        let keyframe = p.force_keyframe || p.frame % p.config.keyframe_every.max(1) == 0;
        p.force_keyframe = false;
        p.frame += 1;
        p.next_video += p.frame_interval;
        p.picture_id = (p.picture_id + 1) & 0x7fff;
        p.tl0 = p.tl0.wrapping_add(1);
        p.video_ts = p.video_ts.wrapping_add(VIDEO_CLOCK / p.config.fps.max(1));
        let bytes = p.config.frame_bytes() * if keyframe { 3 } else { 1 };
        let packets = bytes.div_ceil(media::VIDEO_PAYLOAD);
        if keyframe {
            shared.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        let (mid, pt, ts, picture_id, tl0) = (p.video_mid, p.vp8, p.video_ts, p.picture_id, p.tl0);
        for i in 0..packets {
            let Role::Publisher(p) = &mut self.role else {
                return;
            };
            let seq = p.video_seq;
            p.video_seq += 1;
            let desc = Vp8Packet {
                start: i == 0,
                keyframe,
                picture_id,
                tl0,
            };
            let len = if i + 1 == packets {
                bytes - i * media::VIDEO_PAYLOAD
            } else {
                media::VIDEO_PAYLOAD
            };
            // Stamped right before str0m seals it and the socket sends it (drained below).
            let payload = media::vp8_payload(desc, media::realtime_ns(), len);
            let write = RtpWrite::new(pt, seq.into(), ts, now, payload).marker(i + 1 == packets);
            self.write(mid, write, shared);
        }
    }

    fn send_audio(&mut self, now: Instant, shared: &Shared) {
        let Role::Publisher(p) = &mut self.role else {
            return;
        };
        p.next_audio += Duration::from_millis(20);
        p.audio_ts = p.audio_ts.wrapping_add(AUDIO_CLOCK / 50);
        let seq = p.audio_seq;
        p.audio_seq += 1;
        let (mid, pt, ts) = (p.audio_mid, p.opus, p.audio_ts);
        let write = RtpWrite::new(
            pt,
            seq.into(),
            ts,
            now,
            media::opus_payload(media::realtime_ns()),
        );
        self.write(mid, write, shared);
    }

    /// Writes one RTP packet and sends what str0m produces right away.
    fn write(&mut self, mid: Mid, write: RtpWrite, shared: &Shared) {
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else {
            self.fail(shared, "no send stream for a negotiated mid");
            return;
        };
        stream.write_rtp(write);
        shared.sent.fetch_add(1, Ordering::Relaxed);
        if shared.measuring.load(Ordering::Relaxed) {
            shared.sent_window.fetch_add(1, Ordering::Relaxed);
        }
        self.drain(None, shared, None);
    }

    /// Reads every queued datagram (mio is edge-triggered) into str0m.
    fn read(
        &mut self,
        buf: &mut [u8],
        cmsg: &mut Vec<u8>,
        shared: &Shared,
        out: &mut ThreadReport,
    ) {
        let fd = self.socket.as_raw_fd();
        while self.alive {
            let (len, source, stamp) = match recv_stamped(fd, buf, cmsg) {
                Ok(got) => got,
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            };
            let now = Instant::now();
            let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, &buf[..len]) else {
                continue;
            };
            if let Err(err) = self.rtc.handle_input(Input::Receive(now, receive)) {
                self.fail(shared, &err.to_string());
                return;
            }
            let stamp = stamp.unwrap_or_else(media::realtime_ns);
            self.drain(Some(stamp), shared, Some(out));
        }
    }

    /// Polls str0m until it asks for a timeout, sending transmits and handling events.
    /// `rx_stamp` is the kernel receive time of the datagram just fed in, if any.
    fn drain(
        &mut self,
        rx_stamp: Option<u64>,
        shared: &Shared,
        mut out: Option<&mut ThreadReport>,
    ) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    if self.socket.send_to(&t.contents, t.destination).is_err() {
                        shared.send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Output::Event(event)) => {
                    self.on_event(event, rx_stamp, shared, out.as_deref_mut())
                }
                Err(err) => {
                    self.fail(shared, &err.to_string());
                    return;
                }
            }
        }
    }

    fn on_event(
        &mut self,
        event: Event,
        rx_stamp: Option<u64>,
        shared: &Shared,
        out: Option<&mut ThreadReport>,
    ) {
        match event {
            Event::Connected if !self.connected => {
                self.connected = true;
                shared.connected.fetch_add(1, Ordering::Relaxed);
                if let Role::Publisher(p) = &mut self.role {
                    let now = Instant::now();
                    p.next_video = now;
                    p.next_audio = now;
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.fail(shared, "ICE disconnected");
            }
            Event::KeyframeRequest(_) => {
                if let Role::Publisher(p) = &mut self.role {
                    p.force_keyframe = true;
                    shared.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                }
            }
            Event::RtpPacket(packet) => {
                let Role::Subscriber(s) = &mut self.role else {
                    return;
                };
                let video = Some(packet.header.payload_type) != s.opus;
                if video && !s.got_video {
                    s.got_video = true;
                    shared.subs_with_video.fetch_add(1, Ordering::Relaxed);
                }
                if !video && !s.got_audio {
                    s.got_audio = true;
                    shared.subs_with_audio.fetch_add(1, Ordering::Relaxed);
                }
                shared.received.fetch_add(1, Ordering::Relaxed);
                if !shared.measuring.load(Ordering::Relaxed) {
                    return;
                }
                shared.received_window.fetch_add(1, Ordering::Relaxed);
                s.seqs[usize::from(!video)].insert(*packet.seq_no);
                if let (Some(out), Some(rx), Some((tx, keyframe))) =
                    (out, rx_stamp, media::read_stamp(&packet.payload, video))
                {
                    let latency = rx.saturating_sub(tx);
                    match (video, keyframe) {
                        (true, false) => out.latency_video_ns.push(latency),
                        (true, true) => out.latency_keyframe_ns.push(latency),
                        (false, _) => out.latency_audio_ns.push(latency),
                    }
                }
            }
            _ => {}
        }
    }

    fn fail(&mut self, shared: &Shared, why: &str) {
        if self.alive {
            self.alive = false;
            shared.failures.fetch_add(1, Ordering::Relaxed);
            eprintln!("sfu-load: client {} failed: {why}", self.local);
        }
    }

    /// Loss bookkeeping of a subscriber's streams.
    fn finish(&self, out: &mut ThreadReport) {
        let Role::Subscriber(s) = &self.role else {
            return;
        };
        for seqs in &s.seqs {
            let (Some(lo), Some(hi)) = (seqs.iter().min(), seqs.iter().max()) else {
                continue;
            };
            out.streams.push((hi - lo + 1, seqs.len() as u64));
        }
    }
}

/// `recvmsg` with the SO_TIMESTAMPNS control message: (length, source, CLOCK_REALTIME ns).
fn recv_stamped(
    fd: RawFd,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
) -> nix::Result<(usize, SocketAddr, Option<u64>)> {
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn>(fd, &mut iov, Some(cmsg), MsgFlags::MSG_DONTWAIT)?;
    let mut stamp = None;
    for c in msg.cmsgs() {
        if let ControlMessageOwned::ScmTimestampns(ts) = c {
            stamp = Some(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64);
        }
    }
    let source = msg
        .address
        .map(|a| SocketAddr::V4(std::net::SocketAddrV4::from(a)))
        .ok_or(nix::errno::Errno::EINVAL)?;
    Ok((msg.bytes, source, stamp))
}

const WAKER: Token = Token(usize::MAX);

/// A client thread: send it clients, stop it through `Shared::stop`, join it for its report.
#[derive(Debug)]
pub struct ClientThread {
    inbox: Sender<Client>,
    waker: Arc<Waker>,
    handle: JoinHandle<ThreadReport>,
}

impl ClientThread {
    /// Starts thread `index`.
    pub fn spawn(index: usize, shared: Arc<Shared>) -> anyhow::Result<ClientThread> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (inbox, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(format!("load-clients-{index}"))
            .spawn(move || run(poll, &rx, &shared))?;
        Ok(ClientThread {
            inbox,
            waker,
            handle,
        })
    }

    /// Hands a client to the thread.
    pub fn add(&self, client: Client) -> anyhow::Result<()> {
        self.inbox
            .send(client)
            .map_err(|_| anyhow::anyhow!("client thread has exited"))?;
        self.waker.wake()?;
        Ok(())
    }

    /// Waits for the thread (after `Shared::stop`) and returns its report.
    pub fn join(self) -> ThreadReport {
        let _ = self.waker.wake();
        self.handle.join().unwrap_or_default()
    }
}

/// Longest a client thread sleeps without looking at its clients' timers.
const MAX_SLEEP: Duration = Duration::from_millis(50);

fn run(mut poll: Poll, inbox: &Receiver<Client>, shared: &Shared) -> ThreadReport {
    let mut clients: Vec<Client> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 2048];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut report = ThreadReport::default();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let mut wake = now + MAX_SLEEP;
        for c in &mut clients {
            c.on_time(now, shared);
            if c.alive {
                wake = wake.min(c.next_wake());
            }
        }
        let wait = wake.saturating_duration_since(Instant::now());
        if let Err(err) = poll.poll(&mut events, Some(wait))
            && err.kind() != std::io::ErrorKind::Interrupted
        {
            eprintln!("sfu-load: epoll failed: {err}");
            break;
        }
        for event in &events {
            if event.token() == WAKER {
                while let Ok(mut client) = inbox.try_recv() {
                    let token = Token(clients.len());
                    if let Err(err) =
                        poll.registry()
                            .register(&mut client.socket, token, Interest::READABLE)
                    {
                        eprintln!("sfu-load: cannot register a client socket: {err}");
                        continue;
                    }
                    clients.push(client);
                }
            } else if let Some(c) = clients.get_mut(event.token().0) {
                c.read(&mut buf, &mut cmsg, shared, &mut report);
            }
        }
    }
    for c in &clients {
        c.finish(&mut report);
    }
    report
}
